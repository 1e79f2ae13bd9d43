"""The ideal rate of a coder: the negated bound its net rate approaches, computed one way for the
compress stage, the benchmark and anyone else who compares a coder with its bound."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mcbits.coding.config import CoderConfig
from mcbits.coding.distributions import bucket_centres, bucket_edges
from mcbits.coding.registry import coder_spec
from mcbits.vae import bounds
from mcbits.vae.iterative import refined_bound_bpd
from mcbits.vae.models import BinaryVAE

SAMPLE_SETS = 8  # independent sample sets per image: their spread gives the Monte Carlo error


def _discrete_neg_joint_nats(model: BinaryVAE, x: torch.Tensor, gen: torch.Generator,
                             config: CoderConfig) -> np.ndarray:
    """Per image, -log P(x | bucket centre) - log P(bucket), z ~ q(z|x) then bucketed: the
    stochastic coder's rate. (The continuous -log p(x, z) of upstream's table is a density, not a
    coding rate: it leaves out the latents' discretization, about log_num_bucket bits a latent.)"""
    log_num_bucket = config.log_num_bucket
    mean, log_std = model.encode_log_std(x)
    eps = torch.randn(mean.shape, generator=gen, dtype=torch.float64)
    z = (mean + torch.exp(log_std) * eps).numpy()
    buckets = np.searchsorted(bucket_edges(log_num_bucket), z)
    centres = torch.from_numpy(bucket_centres(log_num_bucket)[buckets])
    nll = -bounds.log_bernoulli(x, model.decode_logits(centres))
    return nll.numpy() + mean.shape[1] * log_num_bucket * math.log(2.0)


def _neg_iwae_nats(model: BinaryVAE, x: torch.Tensor, gen: torch.Generator,
                   config: CoderConfig) -> np.ndarray:
    """-IWAE_N per image (-ELBO for N = 1): BB-ELBO's and BB-IS(N)'s ideal rate."""
    return -bounds.iwae(model, x, config.num_particles, gen).numpy()


def _neg_coupled_iwae_nats(model: BinaryVAE, x: torch.Tensor, gen: torch.Generator,
                           config: CoderConfig) -> np.ndarray:
    """The coupled -IWAE_N per image, with the coder's shifts: BB-CIS(N)'s ideal rate."""
    shifts = bounds.cis_shifts(config.num_particles, model.latent_dim, config.seed)
    return -bounds.coupled_iwae(model, x, shifts, gen).numpy()


# One estimate, in nats per image, per bound a coder's spec names (registry.CoderSpec.bound):
# (double-precision model, images, the bound's generator, the coder's config) -> (B,)
BoundEstimate = Callable[[BinaryVAE, torch.Tensor, torch.Generator, CoderConfig], np.ndarray]
BOUND_ESTIMATES: dict[str, BoundEstimate] = {
    "neg_joint_discrete": _discrete_neg_joint_nats,
    "neg_elbo": _neg_iwae_nats,
    "neg_iwae_{n}": _neg_iwae_nats,
    "neg_coupled_iwae_{n}": _neg_coupled_iwae_nats,
}


def ideal_rate_with_error(
    vae: BinaryVAE, images: np.ndarray, config: CoderConfig, *, eval_seed: int = 0,
    iterative: dict[str, Any] | None = None, batch_size: int = 100,
) -> tuple[str, float, float]:
    """(bound name, ideal rate, its standard error), both in bits/dim, on 0/1 images (n, 784).

    The ideal rate is the negated bound the coder's net rate approaches: -ELBO, -IWAE_N, the
    coupled -IWAE_N (BB-CIS) or the discretized -log p(x, z) (stochastic coder), in float64, the
    mean of SAMPLE_SETS independent sample sets per image. With `iterative` ({steps, lr, seed}) it
    is the bound at the coder's refined posteriors. The standard error is the Monte Carlo error of
    that mean for these images (from the spread between the sample sets, images x samples): the
    coder's net rate is measured on the same images, so a gap within about two standard errors of
    zero is sampling noise. `eval_seed` seeds the bound's own samples.
    """
    config = config.validated()
    n = config.num_particles
    if iterative:
        name = "neg_elbo_refined" if n == 1 else f"neg_iwae_{n}_refined"
        per_set = refined_bound_bpd(vae, images, steps=iterative["steps"], lr=iterative["lr"],
                                    num_particles=n, seed=iterative["seed"], eval_seed=eval_seed,
                                    arithmetic=config.arithmetic, per_image=True, sample_sets=SAMPLE_SETS)
        return name, *_mean_and_error(per_set)
    spec = coder_spec(config.coder)
    estimate = BOUND_ESTIMATES[spec.bound]
    work = type(vae)(vae.latent_dim, vae.hidden_dim)
    work.load_state_dict(vae.state_dict())
    work = work.double().eval()
    gen = torch.Generator().manual_seed(eval_seed)
    sets: list[list[np.ndarray]] = [[] for _ in range(SAMPLE_SETS)]
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = torch.from_numpy(images[start:start + batch_size].astype(np.float64))
            for part in sets:
                part.append(estimate(work, x, gen, config))
    per_set = np.stack([np.concatenate(part) for part in sets]) / (images.shape[1] * math.log(2.0))
    return spec.bound_name(n), *_mean_and_error(per_set)


def _mean_and_error(per_set_bpd: np.ndarray) -> tuple[float, float]:
    """(mean, Monte Carlo standard error of the mean) of estimates (sets, images)."""
    values = np.asarray(per_set_bpd, dtype=np.float64)
    sets, count = values.shape
    per_image = values.mean(axis=0)
    # each image's estimate is the mean of `sets` draws; their spread estimates its variance
    within = values.var(axis=0, ddof=1).sum() / sets if sets > 1 else float("nan")
    return float(per_image.mean()), float(math.sqrt(within) / count)
