"""Iterative inference in exact arithmetic: Adam on -IWAE_N with a fixed-point network and gradient.

Amortized-iterative inference refines the encoder's posterior (mean, log std) of each image by
gradient steps on the coder's bound before coding. The decoder must get bit-identical refined
parameters from the decoded image, on any machine, so every number here is either an integer
(network, backward pass, importance weights: as in `mcbits.coding.exact`) or the result of
IEEE-754 basic operations (+, -, *, /, sqrt, each correctly rounded everywhere) applied
element by element (Adam's moment updates):

- noise: per image, 16-bit uniforms from numpy's PCG64 seeded by (seed, image position), mapped to
  normal quantiles by an integer table;
- forward: z = mean + exp(log std) eps on the 2^-16 grid, the fixed-point decoder;
- backward: d log p(x|z) / d logits = x - sigmoid (table), back through the integer weights with
  exact float64 GEMMs and tanh' = 1 - h^2, plus the prior's -z;
- IWAE weights: softmax of integer log2-weights (exp2 table); N = 1 is the ELBO;
- Adam (torch's defaults: betas 0.9, 0.999, eps 1e-8) in float64, element-wise.

The refined parameters are rounded onto the 2^-16 grid that the exact posterior tables take.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numba as nb
import numpy as np

from mcbits.coding import exact, network
from mcbits.coding.limits import IterativeSettings

NOISE_BITS = 16   # uniforms per noise value
GRAD_LIMIT = 1 << 24  # |gradient| <= 256 at 2^-16 (keeps every product below 2^63)
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


@functools.lru_cache(maxsize=1)
def noise_table() -> np.ndarray:
    """Standard-normal quantiles at the mid-points of 2^16 equal-mass cells, at 2^-12: int64."""
    u = np.arange(1 << NOISE_BITS, dtype=np.int64)
    edges16 = exact._inverse_phi16((2 * u + 1) << (40 - NOISE_BITS - 1))
    out = (edges16 + 8) >> 4
    out.setflags(write=False)
    return out


def draw_noise(seed: int, image_ids: np.ndarray, steps: int, num_particles: int, dim: int) -> np.ndarray:
    """Standard-normal noise (steps, N, B, D) at 2^-12, each image's from its own seeded generator."""
    table = noise_table()
    per_image = [
        table[np.random.Generator(np.random.PCG64([seed, 0x1F, int(i)])).integers(
            0, 1 << NOISE_BITS, size=(steps, num_particles, dim), dtype=np.int64)]
        for i in np.asarray(image_ids).tolist()
    ]
    if not per_image:
        return np.zeros((steps, num_particles, 0, dim), dtype=np.int64)
    return np.ascontiguousarray(np.stack(per_image, axis=2))


@nb.njit(cache=True, nogil=True)
def _sample(mean16, log_std16, eps12, exp2_table, log2e30, z12, z16, se16):
    # z = mean + exp(log std) eps; rows are (particle, image), eps (N, B, D)
    num, b_count, d_count = eps12.shape
    lim = (np.int64(8) << 12) - 1
    for b in range(b_count):
        for d in range(d_count):
            ls = min(max(log_std16[b, d], -(np.int64(10) << 16)), np.int64(10) << 16)
            y = ls * log2e30  # log2 of std at 2^-46
            n = y >> 46
            v30 = exact._lookup((y - (n << 46)) >> 22, exp2_table, 0, 10)
            sigma16 = v30 >> (14 - n) if n <= 14 else v30 << (n - 14)
            for k in range(num):
                r = k * b_count + b
                se = (sigma16 * eps12[k, b, d]) >> 12
                se = min(max(se, -(np.int64(16) << 16)), np.int64(16) << 16)
                z = mean16[b, d] + se
                se16[r, d] = se
                z16[r, d] = z
                zz = z >> 4
                z12[r, d] = min(max(zz, -lim), lim)


@nb.njit(cache=True, nogil=True)
def _output_grad(acc, bias, frac_bits, bits, b_count, sig_table, log2_table, grad, loglik):
    # d log p(x|z) / d logit = x - sigmoid(logit) at 2^-15; log2 p(x|z) at 2^-32
    for r in range(acc.shape[0]):
        image = r % b_count
        s = np.int64(0)
        for c in range(acc.shape[1]):
            x24 = exact._to_bits(np.int64(acc[r, c]) + np.int64(bias[c]), frac_bits, 24)
            s40 = exact._lookup(x24, sig_table, -32, 8)
            one = np.int64(bits[image, c])
            grad[r, c] = ((one << 40) - s40) >> 25
            f = s40 if one else (np.int64(1) << 40) - s40
            if f < 1:
                f = 1
            s += exact._log2_fixed(f, log2_table)
        loglik[r] = s - ((np.int64(40) * acc.shape[1]) << 32)


@nb.njit(cache=True, nogil=True)
def _tanh_backward(gacc, shift, h, out):
    # gacc = g W at 2^-(15 + shift); out = g_h (1 - h^2) at 2^-15 (h at 2^-15)
    lim = np.int64(1) << 22
    for r in range(gacc.shape[0]):
        for c in range(gacc.shape[1]):
            g = exact._to_bits(np.int64(gacc[r, c]), 15 + shift, 15)
            g = min(max(g, -lim), lim)
            hv = np.int64(h[r, c])
            out[r, c] = (g * ((np.int64(1) << 30) - hv * hv)) >> 30


@nb.njit(cache=True, nogil=True)
def _param_grads(gacc, frac_bits, z16, se16, eps12, loglik, exp2_table, log2e30, grad_mean, grad_log_std):
    # -d IWAE_N / d(mean, log std) at 2^-16 from the latent gradient of each particle
    num, b_count, d_count = eps12.shape
    log2e20 = log2e30 >> 10
    lw = np.empty(num, dtype=np.int64)
    w = np.empty(num, dtype=np.int64)
    for b in range(b_count):
        top = np.int64(-(1 << 62))
        for k in range(num):
            r = k * b_count + b
            diff = np.int64(0)  # sum eps^2 - z^2 at 2^-32 (nats x 2)
            for d in range(d_count):
                e16 = eps12[k, b, d] << 4
                diff += e16 * e16 - z16[r, d] * z16[r, d]
            lw[k] = loglik[r] + (((diff >> 9) * log2e20) >> 12)
            if lw[k] > top:
                top = lw[k]
        total = np.int64(0)
        for k in range(num):
            dlt = lw[k] - top
            if dlt < -(np.int64(40) << 32):
                w[k] = 0
            else:
                n = dlt >> 32
                w[k] = exact._lookup((dlt - (n << 32)) >> 8, exp2_table, 0, 10) >> (-n)
            total += w[k]
        for k in range(num):
            w[k] = (w[k] << 30) // total  # normalized weight at 2^-30
        for d in range(d_count):
            gm = np.int64(0)
            gs = np.int64(0)
            for k in range(num):
                r = k * b_count + b
                gz = exact._to_bits(np.int64(gacc[r, d]), frac_bits, 16) - z16[r, d]
                gz = min(max(gz, -GRAD_LIMIT), GRAD_LIMIT)
                gm += (w[k] * gz) >> 30
                gs += (w[k] * ((gz * se16[r, d]) >> 16)) >> 30
            grad_mean[b, d] = -gm
            grad_log_std[b, d] = -(gs + (np.int64(1) << 16))


def refine_fixed(
    net: network.FixedPointVAE, images: np.ndarray, mean16: np.ndarray, log_std16: np.ndarray,
    noise12: np.ndarray, lr: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Run len(noise12) Adam steps on -IWAE_N (N = noise12.shape[1]) from (mean, log std) at 2^-16.

    images: (B, P) 0/1; noise12: (steps, N, B, D) at 2^-12. Returns refined (mean, log std) at 2^-16.
    Each image's result depends only on its own inputs: batching changes nothing.
    """
    t = exact.tables()
    log2e30 = int(t["log2e"][0])
    images = np.ascontiguousarray(images, dtype=np.uint8)
    b, d = mean16.shape
    params = [np.ldexp(np.asarray(mean16, dtype=np.float64), -16),
              np.ldexp(np.asarray(log_std16, dtype=np.float64), -16)]
    moment1 = [np.zeros((b, d)), np.zeros((b, d))]
    moment2 = [np.zeros((b, d)), np.zeros((b, d))]
    power1 = power2 = 1.0
    dec1, dec2, dec3 = net.dec1, net.dec2, net.dec3
    mm = net.matmul
    for eps in noise12:
        num = eps.shape[0]
        rows = num * b
        m16, s16 = (np.floor(np.ldexp(p, 16)).astype(np.int64) for p in params)
        z12, z16, se16 = (np.empty((rows, d), dtype=np.int64) for _ in range(3))
        _sample(m16, s16, np.ascontiguousarray(eps), t["exp2"], log2e30, z12, z16, se16)
        h1 = dec1.tanh(z12.astype(np.float64), mm)
        h2 = dec2.tanh(h1, mm)
        acc = np.ascontiguousarray(dec3.product(h2, mm))
        grad_out = np.empty(acc.shape, dtype=np.float64)
        loglik = np.empty(rows, dtype=np.int64)
        _output_grad(acc, dec3.bias, dec3.out_bits, images, b, t["sigmoid"], t["log2"], grad_out, loglik)
        g2 = np.empty(h2.shape, dtype=np.float64)
        _tanh_backward(np.ascontiguousarray(mm(grad_out, dec3.weight_t.T)), dec3.shift, h2, g2)
        g1 = np.empty(h1.shape, dtype=np.float64)
        _tanh_backward(np.ascontiguousarray(mm(g2, dec2.weight_t.T)), dec2.shift, h1, g1)
        gz = np.ascontiguousarray(mm(g1, dec1.weight_t.T))  # at 2^-(15 + dec1.shift)
        grad_mean = np.empty((b, d), dtype=np.int64)
        grad_log_std = np.empty((b, d), dtype=np.int64)
        _param_grads(gz, 15 + dec1.shift, z16, se16, np.ascontiguousarray(eps), loglik, t["exp2"], log2e30,
                     grad_mean, grad_log_std)
        # Adam, element-wise IEEE arithmetic (each operation correctly rounded on every machine)
        power1 *= BETA1
        power2 *= BETA2
        for i, grad in enumerate((grad_mean, grad_log_std)):
            g = np.ldexp(grad.astype(np.float64), -16)
            moment1[i] = BETA1 * moment1[i] + (1.0 - BETA1) * g
            moment2[i] = BETA2 * moment2[i] + (1.0 - BETA2) * (g * g)
            step = (moment1[i] / (1.0 - power1)) / (np.sqrt(moment2[i] / (1.0 - power2)) + ADAM_EPS)
            params[i] = params[i] - lr * step
    mean, log_std = params
    return network.quantize_posterior(mean, log_std)


class ExactIterativePosterior:
    """An exact coding model whose posterior is the encoder's refined by exact iterative inference.

    Portable like the plain exact model: the refinement is recomputed bit for bit by any decoder.
    """

    arithmetic = "exact"
    portable = True

    def __init__(self, base: network.ExactCodingModel, settings: IterativeSettings):
        self.base = base
        self.network = base.network
        self.iterative = settings
        self.steps, self.lr = settings.steps, settings.lr
        self.num_particles, self.seed = settings.num_particles, settings.seed
        self.latent_dim = base.latent_dim
        self.num_pixels = base.num_pixels
        self._prepared = network.PreparedPosteriors()

    def settings(self) -> dict[str, Any]:
        """What a decoder needs to rebuild this posterior (stored in the bitstream header)."""
        return {"iterative": self.iterative.to_dict()}

    @property
    def pixel_network(self) -> network.FixedPointVAE:
        """The network whose decoder gives the pixel frequencies (the base model's)."""
        return self.base.pixel_network

    def posterior_fixed(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = self._prepared.lookup(images, image_ids)
        return found if found is not None else self._refine(images, image_ids)

    def _refine(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean16, log_std16 = self.network.posterior_fixed(images)
        noise = draw_noise(self.seed, image_ids, self.steps, self.num_particles, self.latent_dim)
        return refine_fixed(self.network, images, mean16, log_std16, noise, self.lr)

    def prepared_posteriors(
        self, images: np.ndarray, batch_size: int = 100
    ) -> contextlib.AbstractContextManager[None]:
        """Refine the posteriors of all `images` (image i has id i) in batches now, and look them up
        in the coder's steps within the block (network.PreparedPosteriors).

        An encoder knows all its images up front, so it refines them in large batches rather than
        one lane step at a time; the decoder learns each image only as it decodes it and cannot.
        The bits are the same either way: each image's refinement depends only on its own inputs
        (refine_fixed).
        """
        return self._prepared.holding(images, self._refine, batch_size)

    def posterior_table(self, images, image_ids, log_num_bucket: int, precision: int) -> np.ndarray:
        mean16, log_std16 = self.posterior_fixed(images, image_ids)
        return exact.posterior_cdf_table(mean16, log_std16, log_num_bucket, precision)

    def pixel_freq1(self, buckets, log_num_bucket: int, precision: int) -> np.ndarray:
        return self.base.pixel_freq1(buckets, log_num_bucket, precision)

    def pixel_log2prob(self, buckets, images, repeat: int, log_num_bucket: int, precision: int,
                       threads: int = 1):
        return self.base.pixel_log2prob(buckets, images, repeat, log_num_bucket, precision, threads)
