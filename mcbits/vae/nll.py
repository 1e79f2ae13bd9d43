"""Model quality: the test negative log-likelihood -log p(x), estimated by importance sampling.

log p(x) ~= log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x), with k samples (the IWAE
paper's Table 1 uses k = 5,000). This is IWAE_k: a lower bound of log p(x) whose gap shrinks as k
grows, so the estimate of -log p(x) is slightly high (pessimistic), never flattering.

The networks run in the model's dtype (float32 by default: 2x faster on a CPU and what the
paper's figures used); the log-sum-exp over samples is accumulated in float64, chunk by chunk,
so k = 5,000 needs memory for `sample_chunk` samples only. The noise comes from one seeded
generator on the model's device: same model, images, seed and chunking give the same figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mcbits.vae.bounds import log_weights_from_noise, nats_to_bpd
from mcbits.vae.models import BinaryVAE

DEFAULT_SAMPLES = 5000


@dataclass(frozen=True)
class NLLEstimate:
    """-log p(x) per image (nats, float64) and its summary over the images."""

    per_image_nats: np.ndarray
    num_samples: int
    seed: int

    @property
    def nats(self) -> float:
        """Mean -log p(x) over the images, in nats per image."""
        return float(self.per_image_nats.mean())

    @property
    def std_error_nats(self) -> float:
        """Standard error of the mean over images (the spread of the images, not of the samples)."""
        m = self.per_image_nats.size
        return float(self.per_image_nats.std(ddof=1) / math.sqrt(m)) if m > 1 else 0.0

    @property
    def bits_per_dim(self) -> float:
        return float(nats_to_bpd(self.nats))

    @property
    def std_error_bits_per_dim(self) -> float:
        return float(nats_to_bpd(self.std_error_nats))

    def summary(self) -> dict[str, float | int]:
        """JSON-ready figures: nats, bits/dim, their standard errors, k and the image count."""
        return {
            "nats": self.nats,
            "std_error_nats": self.std_error_nats,
            "bits_per_dim": self.bits_per_dim,
            "std_error_bits_per_dim": self.std_error_bits_per_dim,
            "num_samples": self.num_samples,
            "num_images": int(self.per_image_nats.size),
            "seed": self.seed,
        }


@torch.no_grad()
def estimate_nll(
    model: BinaryVAE,
    images: np.ndarray | torch.Tensor,
    num_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    batch_size: int = 100,
    sample_chunk: int = 250,
) -> NLLEstimate:
    """-log p(x) of each image by importance sampling with `num_samples` samples from q(z|x).

    Args:
        model: the VAE (its device and dtype are used as they are).
        images: 0/1 images (m, 784) or (m, 28, 28).
        num_samples: k, the importance samples per image.
        seed: seed of the noise generator (on the model's device).
        batch_size: images per network call; `sample_chunk`: samples per call (memory bound).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    weight = model.enc_fc1.weight
    x_all = torch.as_tensor(np.asarray(images))
    if x_all.shape[0] == 0:
        raise ValueError("no images to evaluate")
    x_all = x_all.reshape(x_all.shape[0], -1)
    gen = torch.Generator(device=weight.device).manual_seed(int(seed))
    chunk = max(1, min(sample_chunk, num_samples))
    out = []
    for start in range(0, x_all.shape[0], batch_size):
        x = x_all[start : start + batch_size].to(device=weight.device, dtype=weight.dtype)
        total = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=weight.device)
        for first in range(0, num_samples, chunk):
            k = min(chunk, num_samples - first)
            eps = torch.randn(
                (k, x.shape[0], model.latent_dim), generator=gen, device=weight.device, dtype=weight.dtype
            )
            log_w, _ = log_weights_from_noise(model, x, eps)
            total = torch.logaddexp(total, torch.logsumexp(log_w.double(), dim=0))
        out.append(-(total - math.log(num_samples)))
    per_image = torch.cat(out).cpu().numpy().astype(np.float64)
    return NLLEstimate(per_image_nats=per_image, num_samples=int(num_samples), seed=int(seed))
