"""The ideal rate of a coder: the negated bound its net rate approaches, computed one way for the
compress stage, the benchmark and anyone else who compares a coder with its bound."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mcbits.coding.config import CoderConfig
from mcbits.coding.distributions import bucket_centres, bucket_edges
from mcbits.coding.registry import ideal_bound_name
from mcbits.vae import bounds
from mcbits.vae.iterative import refined_bound_bpd
from mcbits.vae.models import BinaryVAE


def _discrete_neg_joint_nats(model: BinaryVAE, x: torch.Tensor, gen: torch.Generator,
                             log_num_bucket: int) -> float:
    """Sum over images of -log P(x | bucket centre) - log P(bucket), z ~ q(z|x) then bucketed: the
    stochastic coder's rate. (The continuous -log p(x, z) of upstream's table is a density, not a
    coding rate: it leaves out the latents' discretization, about log_num_bucket bits a latent.)"""
    mean, log_std = model.encode_log_std(x)
    eps = torch.randn(mean.shape, generator=gen, dtype=torch.float64)
    z = (mean + torch.exp(log_std) * eps).numpy()
    buckets = np.searchsorted(bucket_edges(log_num_bucket), z)
    centres = torch.from_numpy(bucket_centres(log_num_bucket)[buckets])
    nll = -bounds.log_bernoulli(x, model.decode_logits(centres))
    return float(nll.sum()) + x.shape[0] * mean.shape[1] * log_num_bucket * math.log(2.0)


def ideal_rate(vae: BinaryVAE, images: np.ndarray, config: CoderConfig, *, eval_seed: int = 0,
               iterative: dict[str, Any] | None = None, batch_size: int = 100) -> tuple[str, float]:
    """The negated bound a coder's net rate approaches, in bits/dim, on these 0/1 images (n, 784):
    (bound name, value). Float64, and only the one bound the coder needs: -ELBO, -IWAE_N, the
    coupled -IWAE_N (BB-CIS), or the discretized -log p(x, z) (stochastic coder). With
    `iterative` ({steps, lr, seed}) it is the bound at the refined posteriors. `eval_seed` seeds
    the bound's own samples."""
    config = config.validated()
    n = config.num_particles
    if iterative:
        name = "neg_elbo_refined" if n == 1 else f"neg_iwae_{n}_refined"
        return name, refined_bound_bpd(vae, images, steps=iterative["steps"], lr=iterative["lr"],
                                       num_particles=n, seed=iterative["seed"], eval_seed=eval_seed,
                                       arithmetic=config.arithmetic)
    work = type(vae)(vae.latent_dim, vae.hidden_dim)
    work.load_state_dict(vae.state_dict())
    work = work.double().eval()
    gen = torch.Generator().manual_seed(eval_seed)
    shifts = bounds.cis_shifts(n, vae.latent_dim, config.seed)
    total = 0.0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = torch.from_numpy(images[start:start + batch_size].astype(np.float64))
            if config.coder == "StochasticCoder":
                total += _discrete_neg_joint_nats(work, x, gen, config.log_num_bucket)
            elif config.coder == "CISBitsBackCoder":
                total -= float(bounds.coupled_iwae(work, x, shifts, gen).sum())
            else:
                total -= float(bounds.iwae(work, x, n, gen).sum())
    name = ideal_bound_name(config.coder, n)
    if config.coder == "StochasticCoder":
        name += "_discrete"  # the discretized joint: see _discrete_neg_joint_nats
    return name, total / (images.size * math.log(2.0))
