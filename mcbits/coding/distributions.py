"""Quantized distributions for coding: integer frequencies summing to 2^precision.

Latents are coded as indices of 2^log_num_bucket buckets of equal mass under the N(0, 1) prior;
the decoder network sees each bucket's centre (the prior quantile at the bucket's mid mass).
Every function is vectorized over lanes, particles and dimensions (one call, no Python per
symbol), and the quantized log-probabilities come from the same integers the coder uses, so
importance weights computed here are exactly those that the coded bits realize.

CDF tables are int64 arrays (..., K + 1) that rise from 0 to 2^precision with every symbol at
least 1 wide; `Message.push_table`/`pop_table` code with them.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numba as nb
import numpy as np

from mcbits.errors import McbitsError

_STD_NORMAL = NormalDist()


@functools.lru_cache(maxsize=16)
def bucket_edges(log_num_bucket: int) -> np.ndarray:
    """Inner edges of the 2^log_num_bucket equal-mass buckets of N(0, 1): shape (K - 1,)."""
    k = 1 << log_num_bucket
    edges = np.array([_STD_NORMAL.inv_cdf(i / k) for i in range(1, k)], dtype=np.float64)
    edges.setflags(write=False)
    return edges


@functools.lru_cache(maxsize=16)
def bucket_centres(log_num_bucket: int) -> np.ndarray:
    """Each bucket's representative latent value: the prior quantile at its mid mass, (K,)."""
    k = 1 << log_num_bucket
    centres = np.array([_STD_NORMAL.inv_cdf((i + 0.5) / k) for i in range(k)], dtype=np.float64)
    centres.setflags(write=False)
    return centres


def uniform_prior_table(log_num_bucket: int, precision: int) -> np.ndarray:
    """The prior over buckets (uniform, equal mass) at `precision`: int64 (1, 1, K + 1)."""
    if precision < log_num_bucket:
        raise McbitsError(
            f"prior_mprec={precision} is below log_num_bucket={log_num_bucket}",
            where="parameter prior_mprec",
            remedy="use prior_mprec >= log_num_bucket (upstream: both 8)",
        )
    step = 1 << (precision - log_num_bucket)
    return (np.arange((1 << log_num_bucket) + 1, dtype=np.int64) * step).reshape(1, 1, -1)


@nb.njit(cache=True)
def _gaussian_cdf_table(mean, std, edges, precision, out):
    num_buckets = edges.shape[0] + 1
    spread = float((1 << precision) - num_buckets)
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    for b in range(mean.shape[0]):
        for d in range(mean.shape[1]):
            mu = mean[b, d]
            inv_sigma = 1.0 / std[b, d]
            out[b, d, 0] = 0
            for k in range(1, num_buckets):
                phi = 0.5 * math.erfc(-(edges[k - 1] - mu) * inv_sigma * inv_sqrt2)
                # floor(Phi * (2^m - K)) + k: monotone, and every bucket keeps at least 1
                out[b, d, k] = np.int64(math.floor(phi * spread)) + k
            out[b, d, num_buckets] = 1 << precision


def gaussian_cdf_table(
    mean: np.ndarray, std: np.ndarray, log_num_bucket: int, precision: int
) -> np.ndarray:
    """Discretized Gaussian posteriors over the prior's buckets: int64 (B, D, K + 1).

    mean, std: (B, D). The CDF at bucket edge e is Phi((e - mean) / std), rounded down onto
    2^precision - K levels, plus one unit per bucket so that no bucket is empty.
    """
    if precision <= log_num_bucket:
        raise McbitsError(
            f"prop_mprec={precision} must exceed log_num_bucket={log_num_bucket}",
            where="parameter prop_mprec",
            remedy="use prop_mprec > log_num_bucket (upstream: 16 and 8)",
        )
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    std = np.ascontiguousarray(std, dtype=np.float64)
    if mean.shape != std.shape or mean.ndim != 2:
        raise ValueError(f"mean and std must both be (B, D), got {mean.shape} and {std.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise McbitsError(
            "the posterior has non-finite means or non-positive standard deviations",
            where="model posterior",
            remedy="check the checkpoint (see `mcbits` model validation)",
        )
    out = np.empty(mean.shape + ((1 << log_num_bucket) + 1,), dtype=np.int64)
    _gaussian_cdf_table(mean, std, bucket_edges(log_num_bucket), precision, out)
    return out


def bernoulli_freq1(probs: np.ndarray, precision: int) -> np.ndarray:
    """Frequency of outcome 1 at `precision` for each pixel probability: round(p 2^m), clipped
    so that both outcomes keep at least 1."""
    if precision < 1:
        raise McbitsError(f"cond_mprec={precision} must be at least 1", where="parameter cond_mprec")
    scale = float(1 << precision)
    freq = np.rint(np.asarray(probs, dtype=np.float64) * scale).astype(np.int64)
    return np.clip(freq, 1, (1 << precision) - 1)


@nb.njit(cache=True)
def _bernoulli_log2prob(freq1, bits, precision, out):
    total = 1 << precision
    for r in range(freq1.shape[0]):
        acc = 0.0
        for i in range(freq1.shape[1]):
            f = freq1[r, i] if bits[r, i] else total - freq1[r, i]
            acc += math.log2(f)
        out[r] = acc - precision * freq1.shape[1]


def bernoulli_log2prob(freq1: np.ndarray, bits: np.ndarray, precision: int) -> np.ndarray:
    """log2 of the quantized probability of 0/1 `bits` (R, P) under `freq1` (R, P): (R,)."""
    freq1 = np.ascontiguousarray(freq1, dtype=np.int64)
    bits = np.ascontiguousarray(np.broadcast_to(bits, freq1.shape), dtype=np.uint8)
    out = np.empty(freq1.shape[0], dtype=np.float64)
    _bernoulli_log2prob(freq1, bits, precision, out)
    return out


@nb.njit(cache=True)
def _table_log2prob(cdf, symbols, precision, out):
    # cdf (B, D, K + 1); symbols (B, N, D); out (B, N)
    for b in range(symbols.shape[0]):
        for n in range(symbols.shape[1]):
            acc = 0.0
            for d in range(symbols.shape[2]):
                s = symbols[b, n, d]
                acc += math.log2(cdf[b, d, s + 1] - cdf[b, d, s])
            out[b, n] = acc - precision * symbols.shape[2]


def table_log2prob(cdf: np.ndarray, symbols: np.ndarray, precision: int) -> np.ndarray:
    """log2 quantized probability of particles `symbols` (B, N, D) under tables (B, D, K+1): (B, N)."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int64)
    out = np.empty(symbols.shape[:2], dtype=np.float64)
    _table_log2prob(np.ascontiguousarray(cdf, dtype=np.int64), symbols, precision, out)
    return out


@nb.njit(cache=True)
def _table_lookup(cdf, values, out):
    # the bucket s with cdf[b, d, s] <= value < cdf[b, d, s + 1]
    for b in range(values.shape[0]):
        for n in range(values.shape[1]):
            for d in range(values.shape[2]):
                row = cdf[b, d]
                v = values[b, n, d]
                lo = 0
                hi = row.shape[0] - 1
                while hi - lo > 1:
                    mid = (lo + hi) >> 1
                    if row[mid] <= v:
                        lo = mid
                    else:
                        hi = mid
                out[b, n, d] = lo


def table_lookup(cdf: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Symbols whose CDF range holds each value: cdf (B, D, K+1), values (B, N, D) -> (B, N, D)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    out = np.empty(values.shape, dtype=np.int64)
    _table_lookup(np.ascontiguousarray(cdf, dtype=np.int64), values, out)
    return out


def categorical_table(log_weights: np.ndarray, precision: int) -> np.ndarray:
    """Quantize categoricals given by unnormalized log-weights (B, N) to tables (B, 1, N + 1).

    freq = floor(w / sum(w) * (2^m - N)) + 1, and what rounding left over goes to the largest
    weight: every index stays codable and the table sums to exactly 2^m.
    """
    log_weights = np.asarray(log_weights, dtype=np.float64)
    num = log_weights.shape[1]
    if num > (1 << precision):
        raise McbitsError(
            f"{num} particles do not fit a categorical at mprec={precision}",
            where="parameter mprec",
            remedy=f"use mprec >= {math.ceil(math.log2(num))}",
        )
    w = np.exp(log_weights - log_weights.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    freq = np.floor(w * ((1 << precision) - num)).astype(np.int64) + 1
    top = np.argmax(w, axis=1)
    freq[np.arange(freq.shape[0]), top] += (1 << precision) - freq.sum(axis=1)
    table = np.zeros((freq.shape[0], 1, num + 1), dtype=np.int64)
    np.cumsum(freq, axis=1, out=table[:, 0, 1:])
    return table
