"""Fixed-point networks: the BinaryVAE in integers, and the exact coders' model built on it.

Each weight matrix W becomes integers round(W 2^s) with the largest power-of-two scale s that keeps
them within 16 bits; activations are 16-bit (tanh outputs at 2^-15, latents at 2^-12). Matrix
products are float64 GEMMs of integer-valued operands whose every partial sum stays below 2^53
(checked when a layer is built), so each product and sum is an exactly representable integer and
the result is the same in any summation order, blocking, thread count, batch or device. The
nonlinearities and everything after the networks are `mcbits.coding.exact`'s integer functions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import numba as nb
import numpy as np

from mcbits.coding import blas
from mcbits.coding.exact import (
    ACT_BITS,
    EXACT_SUM_LIMIT,
    LATENT_BITS,
    LOG_STD_LIMIT,
    MEAN_LIMIT,
    POSTERIOR_BITS,
    WEIGHT_BITS,
    _check_cond_precision,
    _logits_log2prob,
    _sparse_tanh_layer,
    _tanh_layer,
    bucket_centres_fixed,
    logits_log2prob,
    pixel_freq1,
    posterior_cdf_table,
    scoring_tables,
    tables,
)
from mcbits.coding.parallel import row_chunks, run_rows
from mcbits.errors import McbitsError

Matmul = Callable[[np.ndarray, np.ndarray], np.ndarray]


class DeviceDecoder(Protocol):
    """The decoder's row computations on the device where `matmul` runs (e.g.
    mcbits.vae.device_decoder), with the integers the CPU's kernels give."""

    def log2prob(self, z: np.ndarray, images: np.ndarray, repeat: int, precision: int) -> np.ndarray:
        """log2 P(images[r // repeat] | z[r]) at 2^-32, int64 (R,), for z (R, D) at 2^-LATENT_BITS."""
        ...

    def freq1(self, z: np.ndarray, precision: int) -> np.ndarray:
        """Frequencies of a 1 at `precision`, int64 (R, P)."""
        ...

# Products of at most this many rows run in `_few_rows_product` rather than BLAS: the measured
# crossover (benchmarks/step_kernels.py on a 2-core AMD EPYC, one thread, the 200x784 layer: 1 row
# 16 us vs BLAS's 21, 4 rows 64 vs 93, 8 rows 120 vs 99; results-step-kernels.json).
FEW_ROWS = 6


@nb.njit(cache=True, nogil=True)
def _few_rows_product(x, weight_t, out):
    # out = x @ weight_t for a few rows, the weight rows four at a time. weight_t holds the layer's
    # integers as float32 (exact: 16 bits), half the memory of float64, which is what a product of
    # one row is bound by; every product and partial sum is an exact integer below 2^53, so the
    # result equals BLAS's whatever the order.
    inner, cols = weight_t.shape
    for r in range(x.shape[0]):
        acc = out[r]
        acc[:] = 0.0
        k = 0
        while k + 4 <= inner:
            a0, a1, a2, a3 = x[r, k], x[r, k + 1], x[r, k + 2], x[r, k + 3]
            w0, w1, w2, w3 = weight_t[k], weight_t[k + 1], weight_t[k + 2], weight_t[k + 3]
            for c in range(cols):
                acc[c] += (a0 * w0[c] + a1 * w1[c]) + (a2 * w2[c] + a3 * w3[c])
            k += 4
        while k < inner:
            a0, w0 = x[r, k], weight_t[k]
            for c in range(cols):
                acc[c] += a0 * w0[c]
            k += 1


def numpy_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 GEMM (BLAS, any thread count): exact for integer operands with sums below 2^53."""
    return a @ b


@nb.njit(cache=True, nogil=True)
def _score_chunk(gemm_address, z, decoder, images, repeat, first, precision, scoring, out):
    # log2 P(x|z) of a chunk of a step's rows, which start at row `first`: the decoder's three GEMMs
    # (BLAS through its address), its two tanh layers and the scores in one call without the GIL
    w1, b1, s1, w2, b2, s2, w3, b3, s3, tanh_table = decoder
    sigmoid_table, log2_table, log2_small, low_cut, high_cut = scoring
    rows = z.shape[0]
    h1 = np.empty((rows, w1.shape[1]))
    a1 = np.empty((rows, w1.shape[1]))
    blas.gemm(gemm_address, z, w1, h1)
    _tanh_layer(h1, b1, s1, tanh_table, a1)
    h2 = np.empty((rows, w2.shape[1]))
    a2 = np.empty((rows, w2.shape[1]))
    blas.gemm(gemm_address, a1, w2, h2)
    _tanh_layer(h2, b2, s2, tanh_table, a2)
    logits = np.empty((rows, w3.shape[1]))
    blas.gemm(gemm_address, a2, w3, logits)
    _logits_log2prob(logits, b3, s3, images, repeat, first, precision, sigmoid_table, log2_table,
                     log2_small, low_cut, high_cut, out)


@nb.njit(cache=True, nogil=True, parallel=True)
def _score_parts(gemm_address, z, parts, decoder, images, repeat, precision, scoring, out):
    # the rows in `parts` contiguous chunks on numba's threads (row_chunks' bounds)
    rows = z.shape[0]
    for part in nb.prange(parts):
        start = rows * part // parts
        stop = rows * (part + 1) // parts
        _score_chunk(gemm_address, z[start:stop], decoder, images, repeat, start, precision, scoring,
                     out[start:stop])


# numba's workqueue threading layer must not be entered by two threads at once (lane groups can
# each ask for row threads): a caller that finds the parallel scorer busy scores its rows alone.
# GNU OpenMP's threads do not survive a fork, and numba ends a forked child that starts a parallel
# region after its parent did: a child scores its rows alone too.
_parallel_scorer = threading.Lock()
_parallel_pid: list[int] = []  # the process that started numba's threads, once it has


def _may_run_parallel() -> bool:
    return not _parallel_pid or _parallel_pid[0] == os.getpid()


def weight_scale_bits(weight: np.ndarray, bits: int = WEIGHT_BITS) -> int:
    """The largest s with max|W| 2^s <= 2^(bits-1) - 1 (exact: only powers of two scale)."""
    peak = float(np.max(np.abs(weight))) if weight.size else 0.0
    if peak == 0.0:
        return 0
    limit = float((1 << (bits - 1)) - 1)
    _, exponent = math.frexp(peak)  # peak = m 2^exponent, 0.5 <= m < 1: exact
    s = bits - 1 - exponent
    while math.ldexp(peak, s) > limit:
        s -= 1
    while math.ldexp(peak, s + 1) <= limit:
        s += 1
    return s


class FixedPointLinear:
    """y = W x + b with integer W (round(W 2^s)) and bias at the output's scale 2^-(s + in_bits)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, in_bits: int, in_limit: int, name: str):
        weight = np.asarray(weight, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64)
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise McbitsError(f"{name} holds non-finite weights", where=f"layer {name}")
        self.name = name
        self.shift = weight_scale_bits(weight)
        self.out_bits = self.shift + in_bits
        # ldexp and rint are exact IEEE operations: every platform gets the same integers
        self.weight_t = np.ascontiguousarray(np.rint(np.ldexp(weight, self.shift)).T)
        self.weight_t32 = self.weight_t.astype(np.float32)  # the same integers (16 bits), for few rows
        self.bias = np.rint(np.ldexp(bias, self.out_bits))
        bound = (np.abs(self.weight_t).sum(axis=0) * in_limit + np.abs(self.bias)).max()
        if not bound < EXACT_SUM_LIMIT:
            raise McbitsError(
                f"layer {name}: partial sums could reach {bound:.3g} >= 2^53, so float64 GEMM "
                "would round", where=f"layer {name}",
                remedy="the weights or biases are far outside a trained BinaryVAE's range",
            )

    def product(self, x: np.ndarray, matmul: Matmul) -> np.ndarray:
        """W x without the bias (the kernels that consume it add the bias on the fly); a product of
        a few rows in compiled code on the CPU (the same integers as `matmul`'s)."""
        if x.shape[0] > FEW_ROWS:
            return matmul(x, self.weight_t)
        out = np.empty((x.shape[0], self.weight_t.shape[1]), dtype=np.float64)
        _few_rows_product(np.ascontiguousarray(x, dtype=np.float64), self.weight_t32, out)
        return out

    def tanh(self, x: np.ndarray, matmul: Matmul) -> np.ndarray:
        """tanh(W x + b) at 2^-ACT_BITS, as integer-valued float64 (the next GEMM's operand)."""
        acc = np.ascontiguousarray(self.product(x, matmul))
        out = np.empty(acc.shape, dtype=np.float64)
        _tanh_layer(acc, self.bias, int(self.out_bits), tables()["tanh"], out)
        return out

    def tanh_sparse(self, x: np.ndarray) -> np.ndarray:
        """`tanh` for inputs that are mostly zero (0/1 images): the weight rows of the nonzero inputs
        summed in compiled code instead of a GEMM (the same integers; a fifth of the work on MNIST)."""
        x = np.ascontiguousarray(x)
        out = np.empty((x.shape[0], self.weight_t.shape[1]), dtype=np.float64)
        _sparse_tanh_layer(x, self.weight_t, self.bias, int(self.out_bits), tables()["tanh"], out)
        return out

    def linear(self, x: np.ndarray, matmul: Matmul) -> np.ndarray:
        """W x + b as int64 at 2^-out_bits."""
        return (self.product(x, matmul) + self.bias).astype(np.int64)


ACT_LIMIT = (1 << ACT_BITS) - 1
PREPARED_IMAGES = 1 << 18  # at most this many images' posteriors are computed up front (16 B/latent)


class FixedPointVAE:
    """A BinaryVAE (784-200-200-(50, 50) tanh encoder, 50-200-200-784 tanh decoder) in fixed point.

    Built from float weights (a state dict as numpy arrays, names as BinaryVAE's) by an exact rule,
    so encoder and decoder rebuild identical integers from the same checkpoint. `matmul` is the
    GEMM used (numpy by default; any exact float64 GEMM, e.g. torch on a GPU, gives the same bits).
    """

    def __init__(self, state: Mapping[str, np.ndarray], matmul: Matmul = numpy_matmul):
        def layer(name: str, in_bits: int, in_limit: int) -> FixedPointLinear:
            return FixedPointLinear(state[f"{name}.weight"], state[f"{name}.bias"], in_bits, in_limit,
                                    name)

        self.matmul = matmul
        self.enc1 = layer("enc_fc1", 0, 1)
        self.enc2 = layer("enc_fc2", ACT_BITS, ACT_LIMIT)
        self.enc_mean = layer("enc_fc31", ACT_BITS, ACT_LIMIT)
        self.enc_log_std = layer("enc_fc32", ACT_BITS, ACT_LIMIT)
        self.dec1 = layer("dec_fc1", LATENT_BITS, 8 << LATENT_BITS)
        self.dec2 = layer("dec_fc2", ACT_BITS, ACT_LIMIT)
        self.dec3 = layer("dec_fc3", ACT_BITS, ACT_LIMIT)
        self.latent_dim = self.enc_mean.weight_t.shape[1]
        self.num_pixels = self.enc1.weight_t.shape[0]
        # where `matmul` runs on another device: the decoder's whole row computations there (set
        # by the caller that made `matmul`), the same integers
        self.device_decoder: DeviceDecoder | None = None

    def posterior_fixed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, log std) of q(z|x) at 2^-16, int64 (B, D), for 0/1 images (B, P)."""
        x = np.ascontiguousarray(images, dtype=np.uint8)
        h = self.enc2.tanh(self.enc1.tanh_sparse(x), self.matmul)
        mean = self.enc_mean.linear(h, self.matmul)
        log_std = self.enc_log_std.linear(h, self.matmul)
        return (_rescale(mean, self.enc_mean.out_bits, POSTERIOR_BITS),
                _rescale(log_std, self.enc_log_std.out_bits, POSTERIOR_BITS))

    def logits_fixed(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Bernoulli logits for latents z (R, D) at 2^-LATENT_BITS, as (W h: float64 integers (R, P),
        bias (P,), fraction bits): logits = W h + bias, added by the consuming kernel."""
        z = np.ascontiguousarray(z, dtype=np.float64)
        h = self.dec2.tanh(self.dec1.tanh(z, self.matmul), self.matmul)
        return self.dec3.product(h, self.matmul), self.dec3.bias, self.dec3.out_bits

    def decoder_arguments(self, few_rows: bool = False) -> tuple:
        """The decoder as the compiled kernels take it: each layer's integers (float64 for BLAS, or
        float32 for the few-rows product), bias and fraction bits, then the tanh table."""
        return self._few_rows_decoder if few_rows else self._blas_decoder

    def _decoder_tuple(self, weights: str) -> tuple:
        return (*[value for layer in (self.dec1, self.dec2, self.dec3)
                  for value in (getattr(layer, weights), layer.bias, int(layer.out_bits))], tables()["tanh"])

    @functools.cached_property
    def _blas_decoder(self) -> tuple:
        return self._decoder_tuple("weight_t")  # built once: a step would otherwise rebuild it

    @functools.cached_property
    def _few_rows_decoder(self) -> tuple:
        return self._decoder_tuple("weight_t32")

    def log2prob_rows(self, z: np.ndarray, images: np.ndarray, repeat: int, precision: int,
                      threads: int = 1) -> np.ndarray | None:
        """log2 P(images[r // repeat] | z[r]) at 2^-32 (int64 (R,)) for latents z (R, D) at
        2^-LATENT_BITS, each chunk of rows (row_chunks over `threads`) one compiled call on its own
        thread; None where that cannot run (no BLAS function to call, another GEMM than numpy's,
        rows for the few-rows kernel), so the caller computes the same numbers its own way. With a
        `device_decoder`, that computes the rows (on its device) instead."""
        if self.device_decoder is not None and z.shape[0] > FEW_ROWS:
            return np.asarray(self.device_decoder.log2prob(z, images, int(repeat), int(precision)),
                              dtype=np.int64)
        address = blas.dgemm_address()
        if not address or self.matmul is not numpy_matmul or z.shape[0] <= FEW_ROWS:
            return None
        decoder, scoring = self.decoder_arguments(), scoring_tables(int(precision))
        z = np.ascontiguousarray(z, dtype=np.float64)
        images = np.ascontiguousarray(images, dtype=np.uint8)
        out = np.empty(z.shape[0], dtype=np.int64)
        parts = len(row_chunks(z.shape[0], threads))
        if parts > 1 and _may_run_parallel() and _parallel_scorer.acquire(blocking=False):
            try:
                if not _parallel_pid:
                    _parallel_pid.append(os.getpid())
                _score_parts(address, z, parts, decoder, images, int(repeat), int(precision), scoring, out)
            finally:
                _parallel_scorer.release()
        else:
            _score_chunk(address, z, decoder, images, int(repeat), 0, int(precision), scoring, out)
        return out

    def fingerprint(self) -> str:
        """SHA-256 of every integer the network computes with (for tests and diagnostics)."""
        digest = hashlib.sha256()
        for lyr in (self.enc1, self.enc2, self.enc_mean, self.enc_log_std, self.dec1, self.dec2, self.dec3):
            digest.update(np.int64(lyr.shift).tobytes())
            digest.update(lyr.weight_t.astype(np.int64).tobytes())
            digest.update(lyr.bias.astype(np.int64).tobytes())
        return digest.hexdigest()


def _rescale(values: np.ndarray, from_bits: int, to_bits: int) -> np.ndarray:
    if from_bits >= to_bits:
        return values >> (from_bits - to_bits)
    return values << (to_bits - from_bits)


def quantize_posterior(mean: np.ndarray, log_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float (mean, log std) -> 2^-16 integers (floor; exact in IEEE arithmetic), clamped."""
    def fixed(v: np.ndarray, limit: int) -> np.ndarray:
        v = np.clip(np.asarray(v, dtype=np.float64), -limit, limit)
        return np.floor(np.ldexp(v, POSTERIOR_BITS)).astype(np.int64)

    return fixed(mean, MEAN_LIMIT), fixed(log_std, LOG_STD_LIMIT)


@nb.njit(cache=True, nogil=True)
def _rows_are(known, ids, images):
    # known[ids] == images, without the copies (a per-step check: numpy's costs more than a step's pop)
    for r in range(ids.shape[0]):
        i = ids[r]
        if i < 0 or i >= known.shape[0]:
            return False
        for p in range(known.shape[1]):
            if known[i, p] != images[r, p]:
                return False
    return True


PosteriorFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class PreparedPosteriors:
    """Posteriors computed up front for a sequence of images the encoder knows (image i has id i),
    looked up by the coder's steps.

    One GEMM of 1,000 rows costs far less than 1,000 one-row GEMMs (each reads every weight), and
    iterative inference batches the same way. The numbers are those the steps would compute: a
    model's posterior of an image depends on that image and its id alone. A step whose images are
    not the prepared ones (another sequence, a decoder) computes its own. More than PREPARED_IMAGES
    images are not prepared (memory: 16 bytes a latent), only computed step by step.
    """

    def __init__(self) -> None:
        self._ready: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def lookup(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The prepared (mean, log std) of these images, or None where they are not prepared."""
        ready = self._ready  # read once: the steps of several lane groups look up concurrently
        if ready is None:
            return None
        known, mean_all, log_std_all = ready
        ids = np.asarray(image_ids, dtype=np.int64)
        images = np.asarray(images)
        if (images.shape == (ids.shape[0], known.shape[1]) and images.dtype == known.dtype
                and _rows_are(known, ids, images)):
            return mean_all[ids], log_std_all[ids]
        return None

    @contextlib.contextmanager
    def holding(self, images: np.ndarray, compute: PosteriorFn, batch_size: int) -> Iterator[None]:
        """Compute every image's posterior with compute(images, ids) in batches now, and look them
        up within the block."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        count = images.shape[0]
        if count > PREPARED_IMAGES:
            yield
            return
        means, log_stds = [], []
        for start in range(0, count, batch_size):
            ids = np.arange(start, min(start + batch_size, count))
            mean16, log_std16 = compute(images[ids], ids)
            means.append(mean16)
            log_stds.append(log_std16)
        if not means:
            yield
            return
        self._ready = (images, np.concatenate(means), np.concatenate(log_stds))
        try:
            yield
        finally:
            self._ready = None


class ExactCodingModel:
    """The coders' model interface in exact arithmetic: integer tables straight from the network.

    `posterior_fixed` may be replaced (e.g. by iterative inference's refined posterior, quantized
    with `quantize_posterior`); everything downstream of it stays integer.
    """

    arithmetic = "exact"

    def __init__(self, network: FixedPointVAE):
        self.network = network
        self.latent_dim = int(network.latent_dim)
        self.num_pixels = int(network.num_pixels)
        self._prepared = PreparedPosteriors()

    @property
    def pixel_network(self) -> FixedPointVAE:
        """The network whose decoder gives pixel_freq1 and pixel_log2prob (compiled steps run it)."""
        return self.network

    def posterior_fixed(self, images: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = self._prepared.lookup(images, image_ids)
        return found if found is not None else self.network.posterior_fixed(images)

    def prepared_posteriors(
        self, images: np.ndarray, batch_size: int = 1000
    ) -> contextlib.AbstractContextManager[None]:
        """Compute the posteriors of all `images` (image i has id i) in batches of `batch_size`
        now, and look them up in the coder's steps within the block (PreparedPosteriors)."""
        return self._prepared.holding(images, lambda batch, ids: self.network.posterior_fixed(batch),
                                      batch_size)

    def posterior_table(
        self, images: np.ndarray, image_ids: np.ndarray, log_num_bucket: int, precision: int
    ) -> np.ndarray:
        mean16, log_std16 = self.posterior_fixed(images, image_ids)
        return posterior_cdf_table(mean16, log_std16, log_num_bucket, precision)

    def pixel_freq1(self, buckets: np.ndarray, log_num_bucket: int, precision: int) -> np.ndarray:
        z = bucket_centres_fixed(log_num_bucket)[np.asarray(buckets, dtype=np.int64)]
        device = self.network.device_decoder
        if device is not None and z.shape[0] > FEW_ROWS:
            _check_cond_precision(precision)
            return np.asarray(device.freq1(z, int(precision)), dtype=np.int64)
        product, bias, bits = self.network.logits_fixed(z)
        return pixel_freq1(product, bits, precision, bias)

    def pixel_log2prob(
        self, buckets: np.ndarray, images: np.ndarray, repeat: int, log_num_bucket: int, precision: int,
        threads: int = 1,
    ) -> np.ndarray:
        """log2 P(images[r // repeat] | buckets[r]) at 2^-32, int64 (R,): the rows in chunks on
        `threads` threads (the same numbers for any count)."""
        z = bucket_centres_fixed(log_num_bucket)[np.asarray(buckets, dtype=np.int64)]
        images = np.ascontiguousarray(images, dtype=np.uint8)
        _check_cond_precision(precision)
        compiled = self.network.log2prob_rows(z, images, repeat, precision, threads)
        if compiled is not None:
            return compiled
        out = np.empty(z.shape[0], dtype=np.int64)

        def rows(start: int, stop: int) -> None:
            product, bias, bits = self.network.logits_fixed(z[start:stop])
            logits_log2prob(product, bits, images, repeat, precision, bias, first=start, out=out[start:stop])

        run_rows(rows, z.shape[0], threads if self.network.matmul is numpy_matmul else 1)
        return out
