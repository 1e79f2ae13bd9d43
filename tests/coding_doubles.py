"""Test doubles for the coders: a tiny deterministic numpy CodingModel and a tiny torch BinaryVAE.

`TinyModel` implements mcbits.coding.coders.CodingModel with fixed random matrices, so the coders can be
exercised in milliseconds without torch. It records what the coders ask of it (for hand-checked
rate accounting), can perturb its pixel probabilities (to simulate a decoder whose arithmetic
differs from the encoder's) and can fail on a chosen call (to test that nothing is written).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mcbits.coding import distributions as dist
from mcbits.coding import exact, network


class TinyModel:
    """A latent-variable model small enough to code a few images in milliseconds.

    posterior(x): a linear map of the pixels (plus a small shift that depends on the image id, as
    seeded per-image inference would), a std between ~0.35 and ~0.71.
    pixel_probs(z): a logistic function of the bucket centres through fixed random weights.
    """

    def __init__(
        self,
        latent_dim: int = 4,
        num_pixels: int = 64,
        seed: int = 0,
        arithmetic: str = "exact",
    ):
        rng = np.random.default_rng(seed)
        # exact: the float outputs below are rounded onto the exact arithmetic's integer grids
        # (deterministic on one machine, which is all a unit test needs) and coded in integers
        self.arithmetic = arithmetic
        self.latent_dim = latent_dim
        self.num_pixels = num_pixels
        self.enc = rng.normal(0.0, 0.15, size=(num_pixels, 2 * latent_dim))
        self.dec = rng.normal(0.0, 1.5, size=(latent_dim, num_pixels))
        self.bias = rng.normal(-0.5, 1.0, size=num_pixels)
        self.perturbation = 0.0  # added to every pixel probability (clipped into (0, 1))
        self.fail_after: int | None = None  # raise on the call after this many pixel_probs calls
        self.posterior_calls: list[tuple[np.ndarray, np.ndarray]] = []
        self.pixel_calls: list[np.ndarray] = []

    def posterior(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.posterior_calls.append((np.array(images, copy=True), np.array(image_ids, copy=True)))
        return self.posterior_params(images, image_ids)

    def posterior_params(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What `posterior` returns, without recording the call."""
        h = np.asarray(images, dtype=np.float64) @ self.enc
        d = self.latent_dim
        # The id-dependent shift makes a decode that passes the wrong ids fail visibly.
        mean = h[:, :d] + 0.05 * (np.asarray(image_ids, dtype=np.float64)[:, None] % 7)
        std = 0.5 * np.exp(0.35 * np.tanh(h[:, d:]))
        return mean, std

    def pixel_probs(self, buckets: np.ndarray, log_num_bucket: int) -> np.ndarray:
        if self.fail_after is not None and len(self.pixel_calls) >= self.fail_after:
            raise RuntimeError("TinyModel: simulated failure")
        self.pixel_calls.append(np.array(buckets, copy=True))
        return self.probs_of(buckets, log_num_bucket)

    def probs_of(self, buckets: np.ndarray, log_num_bucket: int) -> np.ndarray:
        """What `pixel_probs` returns, without recording the call."""
        z = dist.bucket_centres(log_num_bucket)[np.asarray(buckets)]
        probs = 1.0 / (1.0 + np.exp(-(z @ self.dec + self.bias)))
        if self.perturbation:
            probs = np.clip(probs + self.perturbation, 1e-9, 1.0 - 1e-9)
        return probs

    # -- exact arithmetic (ExactModel) ------------------------------------------------------------
    def posterior_fixed(self, images, image_ids) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.posterior(images, image_ids)
        return network.quantize_posterior(mean, np.log(std))

    def posterior_table(self, images, image_ids, log_num_bucket: int, precision: int) -> np.ndarray:
        return exact.posterior_cdf_table(*self.posterior_fixed(images, image_ids), log_num_bucket, precision)

    def pixel_freq1(self, buckets, log_num_bucket: int, precision: int) -> np.ndarray:
        probs = np.clip(self.pixel_probs(buckets, log_num_bucket), 1e-12, 1 - 1e-12)
        logits = np.floor(np.ldexp(np.log(probs) - np.log1p(-probs), 24))
        return exact.pixel_freq1(logits, 24, precision)

    def pixel_log2prob(self, buckets, images, repeat: int, log_num_bucket: int, precision: int,
                       threads: int = 1):
        freq1 = self.pixel_freq1(buckets, log_num_bucket, precision)
        return exact.bernoulli_log2prob(freq1, np.repeat(images, repeat, axis=0), precision)

    def sample_images(self, n: int, seed: int = 1) -> np.ndarray:
        """0/1 images (n, num_pixels) that look like the model's own samples (not pure noise)."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, self.latent_dim))
        probs = 1.0 / (1.0 + np.exp(-(z @ self.dec + self.bias)))
        return (rng.random(probs.shape) < probs).astype(np.uint8)


def vae_layer_shapes(latent_dim: int, hidden_dim: int, num_pixels: int = 784) -> dict[str, tuple[int, int]]:
    """{layer name: (out, in)} of a BinaryVAE, in the module's order (numpy only, for state dicts)."""
    return {
        "enc_fc1": (hidden_dim, num_pixels), "enc_fc2": (hidden_dim, hidden_dim),
        "enc_fc31": (latent_dim, hidden_dim), "enc_fc32": (latent_dim, hidden_dim),
        "dec_fc1": (hidden_dim, latent_dim), "dec_fc2": (hidden_dim, hidden_dim),
        "dec_fc3": (num_pixels, hidden_dim),
    }


def rans_rounding_bound(num_symbols: int, words_per_symbol: int, lprec: int, prec: int) -> float:
    """Largest |net_bits - sum of -log2 p| that a message's head rounding allows.

    A push maps a head x (at least freq * 2^(lprec - prec) after moving words out) to x' with
    x' / (x 2^prec / freq) in (1 - eps, 1 + eps), eps = 2^-(lprec - prec); moving one word out
    loses less than log2(1 + eps). A pop is the inverse of a push, with the same bound.
    """
    eps = 2.0 ** -(lprec - prec)
    return num_symbols * (-math.log2(1.0 - eps) + words_per_symbol * math.log2(1.0 + eps))


def tiny_vae(latent_dim: int = 6, hidden_dim: int = 12, seed: int = 0):
    """A BinaryVAE with small, seeded random weights (784 pixels, like the real one)."""
    import torch

    from mcbits.vae.models import BinaryVAE

    torch.manual_seed(seed)
    return BinaryVAE(latent_dim=latent_dim, hidden_dim=hidden_dim).eval()


def save_tiny_checkpoint(path: Path, latent_dim: int = 6, hidden_dim: int = 12, seed: int = 0) -> Path:
    """Write a tiny random BinaryVAE state dict to `path` (as the train stage would) and return it."""
    from mcbits.vae.models import save_model

    save_model(tiny_vae(latent_dim, hidden_dim, seed), path)
    return Path(path)


def exact_vae_model(latent_dim: int = 8, hidden_dim: int = 24, seed: int = 3,
                    scale: float = 0.4) -> network.ExactCodingModel:
    """A small random BinaryVAE (784 pixels) in fixed point, as the exact coders' model (no torch)."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in vae_layer_shapes(latent_dim, hidden_dim, 784).items():
        state[f"{name}.weight"] = rng.normal(0, scale, size=shape).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(0, scale, size=shape[0]).astype(np.float32)
    return network.ExactCodingModel(network.FixedPointVAE(state))


def random_binary_images(n: int, num_pixels: int = 784, seed: int = 0, density: float = 0.2) -> np.ndarray:
    """Sparse-ish random 0/1 uint8 images (n, num_pixels)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, num_pixels)) < density).astype(np.uint8)
