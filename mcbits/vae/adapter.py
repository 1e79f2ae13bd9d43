"""Adapters from networks to the coders' narrow `CodingModel` interface.

The determinism rule lives here (its network half): network calls that shape coding distributions run
under no_grad, in float32 on the CPU, with one intra-op thread, so the same call gives the same
bits whatever the machine's core count. The coders take care of the other half: identical batch
composition at encode and decode time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from mcbits.coding import distributions as dist

CODING_THREADS = 1


@contextlib.contextmanager
def coding_threads(threads: int = CODING_THREADS, grad: bool = False) -> Iterator[None]:
    """Run torch with a fixed intra-op thread count (and no autograd unless `grad`), restoring the
    previous count afterwards."""
    previous = torch.get_num_threads()
    if previous != threads:
        torch.set_num_threads(threads)
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        if previous != threads:
            torch.set_num_threads(previous)


class TorchCodingModel:
    """Wraps a module with `encode(x) -> (mean, std)` and `decode(z) -> probs` (e.g. BinaryVAE)."""

    def __init__(self, module: torch.nn.Module, latent_dim: int, num_pixels: int = 784):
        self.module = module.to("cpu", torch.float32).eval()
        self.latent_dim = int(latent_dim)
        self.num_pixels = int(num_pixels)
        self._centres: dict[int, torch.Tensor] = {}

    def centres(self, log_num_bucket: int) -> torch.Tensor:
        if log_num_bucket not in self._centres:
            self._centres[log_num_bucket] = torch.from_numpy(
                dist.bucket_centres(log_num_bucket).astype(np.float32)
            )
        return self._centres[log_num_bucket]

    def posterior(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        with coding_threads():
            mean, std = self.module.encode(x)
        return mean.double().numpy(), std.double().numpy()

    def pixel_probs(self, buckets: np.ndarray, log_num_bucket: int) -> np.ndarray:
        z = self.centres(log_num_bucket)[torch.from_numpy(np.ascontiguousarray(buckets))]
        with coding_threads():
            probs = self.module.decode(z)
        return probs.numpy()
