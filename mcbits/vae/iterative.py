"""Amortized-iterative inference: refine the encoder's posterior by gradient steps on the bound.

Starting from the encoder's (mean, log std) for an image, take `steps` Adam steps on the coder's
bound (ELBO for one particle, IWAE_N for N) with respect to those parameters alone. The refined
posterior codes the latents; a tighter posterior means a lower bits-back rate.

Unlike upstream, which precomputed the refined parameters from the original images and handed
them to its decoder, the decoder here recomputes them from each decoded image. Two arithmetics:

- exact (default): `mcbits.coding.refine` runs the steps with the fixed-point network and an
  integer backward pass; files decode bit for bit on any machine (`iterative_posterior` picks it
  for an exact base model).
- float: torch autograd here (`IterativePosterior`), noise seeded by (seed, image position), the
  same batches at encode and decode time, one intra-op thread: bit-identical only on the same CPU
  and build, so such files are marked not portable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mcbits.coding import exact, network
from mcbits.coding.limits import IterativeSettings
from mcbits.coding.refine import ExactIterativePosterior
from mcbits.vae.adapter import TorchCodingModel, coding_threads, exact_coding_model
from mcbits.vae.bounds import LOG_2PI, log_bernoulli, log_mean_exp, log_standard_normal


def step_noise(seed: int, image_ids: np.ndarray, steps: int, num_particles: int, dim: int) -> torch.Tensor:
    """Standard-normal noise (steps, N, B, D), each image's from its own seeded generator."""
    per_image = []
    for i in np.asarray(image_ids).tolist():
        state = np.random.SeedSequence([seed, 0x1F, int(i)]).generate_state(1)[0]
        g = torch.Generator().manual_seed(int(state))
        per_image.append(torch.randn((steps, num_particles, dim), generator=g, dtype=torch.float32))
    return torch.stack(per_image, dim=2)


def refine_posterior(
    module: torch.nn.Module,
    images: torch.Tensor,
    noise: torch.Tensor,
    lr: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run len(noise) Adam steps on -IWAE_N (N = noise.shape[1]) w.r.t. (mean, log std).

    images: (B, P) float; noise: (steps, N, B, D). Returns refined (mean, log_std), detached.
    The loss sums over images, so each image's parameters follow their own gradient: batching
    images changes nothing but speed (and, at the last bit, floating-point rounding).
    """
    for p in module.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        mean0, log_std0 = module.encode_log_std(images)
    mean = mean0.clone().requires_grad_(True)
    log_std = log_std0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mean, log_std], lr=lr, foreach=False)
    for eps in noise:
        optimizer.zero_grad(set_to_none=True)
        z = mean + torch.exp(log_std) * eps  # (N, B, D)
        log_q = (-0.5 * (eps * eps + LOG_2PI) - log_std).sum(-1)
        log_w = log_bernoulli(images, module.decode_logits(z)) + log_standard_normal(z) - log_q
        loss = -log_mean_exp(log_w, dim=0).sum()
        loss.backward()
        optimizer.step()
    return mean.detach(), log_std.detach()


class IterativePosterior:
    """A CodingModel whose posterior is the encoder's, refined by iterative inference."""

    def __init__(self, base: TorchCodingModel | network.ExactCodingModel, settings: IterativeSettings,
                 module: torch.nn.Module | None = None):
        self.base = base
        self.module = module if module is not None else base.module
        # the refinement runs in float (torch autograd): its result is rounded to the exact
        # arithmetic's 2^-16 grid, but it can differ across CPUs, so such files are not portable
        self.arithmetic = getattr(base, "arithmetic", "float")
        self.portable = False
        self.iterative = settings
        self.steps, self.lr = settings.steps, settings.lr
        self.num_particles, self.seed = settings.num_particles, settings.seed
        self.latent_dim = base.latent_dim
        self.num_pixels = base.num_pixels

    def settings(self) -> dict[str, Any]:
        """What a decoder needs to rebuild this posterior (stored in the bitstream header)."""
        return {"iterative": self.iterative.to_dict()}

    def refined(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        noise = step_noise(self.seed, image_ids, self.steps, self.num_particles, self.latent_dim)
        with coding_threads(grad=True):
            return refine_posterior(self.module, x, noise, self.lr)

    def posterior(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, log_std = self.refined(images, image_ids)
        return mean.double().numpy(), torch.exp(log_std).double().numpy()

    def pixel_probs(self, buckets: np.ndarray, log_num_bucket: int) -> np.ndarray:
        return self.base.pixel_probs(buckets, log_num_bucket)

    # exact arithmetic: the refined posterior on the 2^-16 grid, everything after it in integers
    def posterior_fixed(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, log_std = self.refined(images, image_ids)
        return network.quantize_posterior(mean.double().numpy(), log_std.double().numpy())

    def posterior_table(
        self, images: np.ndarray, image_ids: np.ndarray, log_num_bucket: int, precision: int
    ) -> np.ndarray:
        return exact.posterior_cdf_table(*self.posterior_fixed(images, image_ids), log_num_bucket, precision)

    def pixel_freq1(self, buckets: np.ndarray, log_num_bucket: int, precision: int) -> np.ndarray:
        return self.base.pixel_freq1(buckets, log_num_bucket, precision)

    def pixel_log2prob(self, buckets, images, repeat, log_num_bucket, precision, threads=1):
        return self.base.pixel_log2prob(buckets, images, repeat, log_num_bucket, precision, threads)


def iterative_posterior(base, module: torch.nn.Module | None, settings: IterativeSettings | None = None,
                        **fields: Any):
    """The iterative-inference posterior in the base model's arithmetic: exact (portable: fixed-point
    gradients, mcbits.coding.refine) or float (torch autograd; decodes only where encoded).

    settings: the IterativeSettings; or give its fields (steps, lr, num_particles, seed) as keywords.
    """
    if settings is None:
        settings = IterativeSettings(**fields)
    elif fields:
        raise TypeError("give IterativeSettings or its fields, not both")
    if getattr(base, "arithmetic", "float") == "exact":
        return ExactIterativePosterior(base, settings)
    return IterativePosterior(base, settings, module=module)


def posterior_from_settings(base, settings: dict[str, Any], module: torch.nn.Module | None = None):
    """Rebuild the coding model a bitstream's header describes (plain or iterative): settings is the
    header's posterior, {} or {"iterative": {steps, lr, num_particles, seed}}."""
    it = (settings or {}).get("iterative")
    if not it:
        return base
    return iterative_posterior(base, module if module is not None else base.module,
                               IterativeSettings.from_dict(it, where="bitstream header: posterior"))


def refined_bound_bpd(
    module: torch.nn.Module,
    images: np.ndarray,
    *,
    steps: int,
    lr: float,
    num_particles: int,
    seed: int,
    eval_seed: int,
    batch_size: int = 100,
    arithmetic: str = "exact",
    per_image: bool = False,
    sample_sets: int = 1,
) -> float | np.ndarray:
    """-IWAE_N (N = num_particles; ELBO for 1) in bits/dim at the refined posteriors: the ideal
    rate of a coder with iterative inference. The refinement is the coder's (same arithmetic, same
    noise); the bound's own samples come from eval_seed. per_image: return each image's value, (n,),
    or (sample_sets, n) for several independent sample sets at the same refined posteriors."""
    num_pixels = images.shape[1]
    values: list[np.ndarray] = []
    gen = torch.Generator().manual_seed(int(eval_seed))
    settings = IterativeSettings(steps=steps, lr=lr, num_particles=num_particles, seed=seed)
    exact_refiner = None
    if arithmetic == "exact":
        exact_refiner = ExactIterativePosterior(exact_coding_model(module), settings)
    for start in range(0, images.shape[0], batch_size):
        ids = np.arange(start, min(start + batch_size, images.shape[0]))
        x = torch.from_numpy(np.ascontiguousarray(images[ids], dtype=np.float32))
        if exact_refiner is not None:
            mean16, log_std16 = exact_refiner.posterior_fixed(images[ids], ids)
            mean = torch.from_numpy(np.ldexp(mean16.astype(np.float64), -16))
            log_std = torch.from_numpy(np.ldexp(log_std16.astype(np.float64), -16))
        else:
            noise = step_noise(seed, ids, steps, num_particles, module.latent_dim)
            with torch.enable_grad():
                mean, log_std = refine_posterior(module, x, noise, settings.lr)
        with torch.no_grad():
            shape = (num_particles, len(ids), module.latent_dim)
            xd, md, sd = x.double(), mean.double(), log_std.double()
            work = module.double()
            try:
                sets = []
                for _ in range(sample_sets):
                    eps = torch.randn(shape, generator=gen, dtype=torch.float64)
                    z = md + torch.exp(sd) * eps
                    log_w = (log_bernoulli(xd, work.decode_logits(z)) + log_standard_normal(z)
                             - (-0.5 * (eps * eps + LOG_2PI) - sd).sum(-1))
                    sets.append((-log_mean_exp(log_w, dim=0)).numpy())
            finally:
                module.float()
            values.append(np.stack(sets))
    per_image_bpd = np.concatenate(values, axis=1) / (num_pixels * math.log(2.0))
    if not per_image:
        return float(per_image_bpd.mean())
    return per_image_bpd[0] if sample_sets == 1 else per_image_bpd
