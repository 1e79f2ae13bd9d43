"""Adapters from a BinaryVAE to the coders' model interfaces, in either arithmetic.

- exact (the default): `exact_coding_model` converts the checkpoint's weights to fixed point
  (mcbits.coding.exact) and computes every coding distribution in integers. Its GEMMs run in
  float64 on integer operands, with numpy's BLAS (all cores) or torch on any device, where a
  step's decoder rows are computed whole (mcbits.vae.device_decoder): the same integers
  everywhere, so files decode on any machine.
- float: `TorchCodingModel` calls the float32 network under no_grad on the CPU with one intra-op
  thread; the same call gives the same bits only on the same CPU and build (the coders keep batch
  composition identical at encode and decode time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from mcbits.coding import distributions as dist
from mcbits.coding import network
from mcbits.vae.device_decoder import DeviceDecoder

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


def torch_matmul(device: str | torch.device) -> network.Matmul:
    """An exact float64 GEMM on `device` (e.g. "cuda"): integer operands give integer results."""
    dev = torch.device(device)

    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = torch.from_numpy(np.ascontiguousarray(a)).to(dev) @ torch.from_numpy(
            np.ascontiguousarray(b)).to(dev)
        return out.cpu().numpy()

    return matmul


def module_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The module's weights as float32 numpy arrays (what the fixed-point rule converts)."""
    return {k: v.detach().to("cpu", torch.float32).numpy() for k, v in module.state_dict().items()}


def exact_coding_model(module: torch.nn.Module, gemm: str = "numpy") -> network.ExactCodingModel:
    """The exact-arithmetic coding model of a BinaryVAE; gemm is "numpy" or a torch device name."""
    if gemm == "numpy":
        return network.ExactCodingModel(network.FixedPointVAE(module_state(module)))
    fixed = network.FixedPointVAE(module_state(module), matmul=torch_matmul(gemm))
    fixed.device_decoder = DeviceDecoder(fixed, gemm)  # a step's decoder rows stay on the device
    return network.ExactCodingModel(fixed)


def coding_model(module: torch.nn.Module, arithmetic: str = "exact", gemm: str = "numpy"):
    """The coders' model for `arithmetic` ("exact" or "float")."""
    if arithmetic == "exact":
        return exact_coding_model(module, gemm)
    if arithmetic == "float":
        return TorchCodingModel(module, latent_dim=module.latent_dim, num_pixels=module.num_pixels)
    raise ValueError(f"unknown arithmetic {arithmetic!r}")
