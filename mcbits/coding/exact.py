"""Exact coding arithmetic: every number that shapes a coding distribution is an integer.

Float rounding differs between CPUs (AVX-512 vs AVX2 kernels, FMA, summation order, thread count)
and between CPU and GPU, and a difference of one unit in a frequency breaks a decode. Here nothing
after the checkpoint's float weights is rounded by the platform:

- Networks run in fixed point (`mcbits.coding.network`): 16-bit integer weights and activations,
  matrix products as float64 GEMMs of integer-valued operands with every partial sum below 2^53,
  so each product and sum is an exactly representable integer: the same result in any summation
  order, blocking, thread count, batch composition or device.
- tanh, the logistic sigmoid, the Gaussian CDF, log2 and 2^x come from integer tables (generated
  by `tablegen` with correctly rounded decimal arithmetic and shipped with the package) with
  linear interpolation in int64 arithmetic.
- Discretized posteriors, pixel frequencies, quantized log-probabilities, importance weights and
  the categorical over particles are computed from those integers with integer operations only.

Fixed-point conventions (integer v means v 2^-bits): inputs to a table lookup at 2^-24; mean and
log std of q(z|x) at 2^-16; bucket edges at 2^-16; log2-probabilities at 2^-32.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from pathlib import Path

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from mcbits.errors import McbitsError

TABLE_FILE = Path(__file__).with_name("tables") / "fixed_point.npz"
TABLE_SHA256 = "2f7275a7b2b88dec9f7a1c45ddddc989bd6c0687a4cc00dd8ff84c4b640a6626"

WEIGHT_BITS = 16          # signed weights within +-(2^15 - 1)
ACT_BITS = 15             # tanh outputs at 2^-15
LATENT_BITS = 12          # decoder inputs (bucket centres) at 2^-12
POSTERIOR_BITS = 16       # posterior mean and log std at 2^-16
MEAN_LIMIT = 32           # |mean| clamped to 32 (prior buckets lie within +-8)
LOG_STD_LIMIT = 10        # log std clamped to [-10, 10]
EXACT_SUM_LIMIT = 1 << 53
MAX_CATEGORICAL_PREC = 32


def tables_sha256(named: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of the tables' contents (names and little-endian int64 values, sorted by name)."""
    digest = hashlib.sha256()
    for name in sorted(named):
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(named[name], dtype="<i8").tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def tables() -> dict[str, np.ndarray]:
    """The shipped integer tables, verified against their SHA-256."""
    remedy = "reinstall mcbits (the tables ship with the package); never edit them by hand"
    try:
        with np.load(TABLE_FILE, allow_pickle=False) as npz:
            out = {name: np.ascontiguousarray(npz[name], dtype=np.int64) for name in npz.files}
    except (OSError, ValueError) as err:
        raise McbitsError(f"cannot read the exact-arithmetic tables: {err}", where=str(TABLE_FILE),
                          remedy=remedy) from err
    if tables_sha256(out) != TABLE_SHA256:
        raise McbitsError("the exact-arithmetic tables do not match their checksum", where=str(TABLE_FILE),
                          remedy=remedy)
    for arr in out.values():
        arr.setflags(write=False)
    return out


# -- table lookups ---------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True, inline="always")
def _lookup(x24, table, first, step_bits):
    # linear interpolation of `table` (entries at first + i 2^-step_bits) at x24 2^-24, saturating
    rel = x24 - (first << 24)
    shift = 24 - step_bits
    idx = rel >> shift
    last = table.shape[0] - 1
    if idx < 0:
        return table[0]
    if idx >= last:
        return table[last]
    r = rel - (idx << shift)
    lo = table[idx]
    return lo + (((table[idx + 1] - lo) * r) >> shift)


@nb.njit(cache=True, nogil=True, inline="always")
def _to_bits(value, from_bits, to_bits):
    # rescale a fixed-point integer, flooring (arithmetic shift)
    if from_bits >= to_bits:
        return value >> (from_bits - to_bits)
    return value << (to_bits - from_bits)


@intrinsic
def _leading_zeros(typingctx, value):
    # LLVM's ctlz: one instruction (lzcnt) where frexp is a library call; for 64-bit integers only
    if value != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.int64(types.int64), codegen


@nb.njit(cache=True, nogil=True, inline="always")
def _log2_fixed(f, log2_table):
    # log2 of an integer 1 <= f < 2^53 at 2^-32; n = floor(log2 f) from the bit length (what
    # frexp of the exactly representable float gives, at a tenth of the cost)
    n = 63 - _leading_zeros(np.int64(f))
    m24 = _to_bits(f, n, 24) - (1 << 24)  # mantissa - 1 in [0, 1) at 2^-24
    return (n << 32) + _lookup(m24, log2_table, 0, 10)


@nb.njit(cache=True, nogil=True, inline="always")
def _tanh_fixed(acc, bias, frac_bits, table):
    # tanh(acc + bias), both exact integers at 2^-frac_bits, at 2^-ACT_BITS
    x24 = _to_bits(np.int64(acc) + np.int64(bias), frac_bits, 24)
    v30 = _lookup(x24, table, -8, 10)
    h = (v30 + (1 << 14)) >> 15
    if h > 32767:
        h = 32767
    elif h < -32767:
        h = -32767
    return h


@nb.njit(cache=True, nogil=True)
def _tanh_layer(acc, bias, frac_bits, table, out):
    # acc + bias (R, C) float64 of exact integers at 2^-frac_bits -> tanh at 2^-ACT_BITS as float64
    for r in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            out[r, c] = _tanh_fixed(acc[r, c], bias[c], frac_bits, table)


@nb.njit(cache=True, nogil=True)
def _sparse_tanh_layer(x, weight_t, bias, frac_bits, table, out):
    # tanh(x W + b) for integer inputs x (R, P) that are mostly 0 (binary images): the weight rows
    # of the nonzero inputs summed, then _tanh_layer's arithmetic. The sums are exact integers
    # below 2^53 (checked when the layer was built), so they equal the GEMM's in any order.
    acc = np.empty(weight_t.shape[1], dtype=np.float64)
    for r in range(x.shape[0]):
        acc[:] = 0.0
        for p in range(x.shape[1]):
            v = np.float64(x[r, p])
            if v != 0.0:
                for c in range(weight_t.shape[1]):
                    acc[c] += v * weight_t[p, c]
        for c in range(weight_t.shape[1]):
            out[r, c] = _tanh_fixed(acc[c], bias[c], frac_bits, table)


@nb.njit(cache=True, nogil=True, inline="always")
def _freq1_of(x24, precision, table):
    # the frequency of a 1 on 2^precision for a logit at x24 2^-24: both outcomes >= 1
    f = (_lookup(x24, table, -32, 8) + (np.int64(1) << (39 - precision))) >> (40 - precision)
    return min(max(f, np.int64(1)), (np.int64(1) << precision) - 1)


@nb.njit(cache=True, nogil=True)
def _pixel_freq1(acc, bias, frac_bits, precision, table, out):
    # Bernoulli logits acc + bias at 2^-frac_bits -> frequency of a 1 at `precision`
    for r in range(acc.shape[0]):
        for c in range(acc.shape[1]):
            out[r, c] = _freq1_of(_to_bits(np.int64(acc[r, c]) + np.int64(bias[c]), frac_bits, 24),
                                  precision, table)


@nb.njit(cache=True, nogil=True)
def _logits_log2prob(acc, bias, frac_bits, bits, repeat, first, precision, sig_table, log2_table,
                     log2_small, low_cut, high_cut, out):
    # fused _pixel_freq1 + _bernoulli_log2prob; row r is row first + r of the step, scored against
    # image (first + r) // repeat (first: where a chunk of the step's rows starts).
    # log2_small[f] = _log2_fixed(f) for every frequency when it is not empty (a cache, same values);
    # logits at or below low_cut have frequency 1, at or above high_cut 2^precision - 1 (the
    # sigmoid saturates: about half of a trained decoder's logits skip the table)
    total = np.int64(1) << precision
    top = total - 1
    cached = log2_small.shape[0] > top
    log2_top = log2_small[top] if cached else _log2_fixed(top, log2_table)  # log2(1) is 0
    cols = acc.shape[1]
    x24 = np.empty(cols, dtype=np.int32)
    for r in range(acc.shape[0]):
        _clamped_x24(acc[r], bias, frac_bits, low_cut, high_cut, x24)
        image = (first + r) // repeat
        s = np.int64(0)
        for c in range(cols):
            x = np.int64(x24[c])
            one = bits[image, c] != 0
            if x <= low_cut:  # f = 1: log2 f is 0 for a 1, log2(total - f) for a 0
                if not one:
                    s += log2_top
            elif x >= high_cut:
                if one:
                    s += log2_top
            else:
                f = _freq1_of(x, precision, sig_table)
                if not one:
                    f = total - f
                s += log2_small[f] if cached else _log2_fixed(f, log2_table)
        out[r] = s - ((precision * cols) << 32)


@nb.njit(cache=True, nogil=True, inline="always")
def _clamped_x24(acc, bias, frac_bits, low_cut, high_cut, out):
    # out = (acc + bias) at 2^-24, floored, clamped to [low_cut, high_cut] (which keeps the side of
    # either cut, all that _logits_log2prob asks of a saturated logit) and so within int32. Done in
    # float64 so that the loop vectorizes: the sum of two exact integers below 2^53 is exact, so is
    # scaling by a power of two, and floor(v 2^-k) is what the arithmetic shift v >> k gives.
    scale = math.ldexp(1.0, 24 - frac_bits)
    low, high = np.float64(low_cut), np.float64(high_cut)
    for c in range(acc.shape[0]):
        out[c] = np.int32(min(max(np.floor((acc[c] + bias[c]) * scale), low), high))


@nb.njit(cache=True, nogil=True)
def _saturation_cuts(precision, table):
    # the largest x24 whose frequency is 1 and the smallest whose frequency is 2^precision - 1, by
    # bisection: _freq1_of is non-decreasing in x24 (the sigmoid table is, and so is each
    # interpolation), and the table's ends (+-32) are far beyond both cuts at any precision <= 39
    top = (np.int64(1) << precision) - 1
    lo, hi = -(np.int64(33) << 24), np.int64(33) << 24
    a, b = lo, hi  # f(a) == 1 < f(b)
    while b - a > 1:
        m = (a + b) >> 1
        if _freq1_of(m, precision, table) == 1:
            a = m
        else:
            b = m
    low_cut = a
    a, b = lo, hi  # f(a) < top == f(b)
    while b - a > 1:
        m = (a + b) >> 1
        if _freq1_of(m, precision, table) == top:
            b = m
        else:
            a = m
    return low_cut, b


@nb.njit(cache=True, nogil=True)
def _log2_all(count, log2_table, out):
    # every entry as _log2_fixed computes it (0 included: a lookup and the cache agree everywhere)
    for f in range(count):
        out[f] = _log2_fixed(f, log2_table)


@nb.njit(cache=True, nogil=True)
def _bernoulli_log2prob(freq1, bits, precision, log2_table, out):
    total = np.int64(1) << precision
    for r in range(freq1.shape[0]):
        acc = np.int64(0)
        for i in range(freq1.shape[1]):
            f = freq1[r, i] if bits[r, i] else total - freq1[r, i]
            acc += _log2_fixed(f, log2_table)
        out[r] = acc - ((precision * freq1.shape[1]) << 32)


@nb.njit(cache=True, nogil=True)
def _table_log2prob(cdf, symbols, precision, log2_table, log2_small, out):
    # log2_small: _log2_fixed's values for the widths it covers (a cache; empty when too large)
    for b in range(symbols.shape[0]):
        for n in range(symbols.shape[1]):
            acc = np.int64(0)
            for d in range(symbols.shape[2]):
                s = symbols[b, n, d]
                width = cdf[b, d, s + 1] - cdf[b, d, s]
                acc += log2_small[width] if width < log2_small.shape[0] else _log2_fixed(width, log2_table)
            out[b, n] = acc - ((precision * symbols.shape[2]) << 32)


@nb.njit(cache=True, nogil=True)
def _phi40(x24, phi_table, out):
    for i in range(x24.shape[0]):
        out[i] = _lookup(x24[i], phi_table, -8, 10)


@nb.njit(cache=True, nogil=True, inline="always")
def _standardizer(mean16, log_std16, exp2_table, log2e30):
    # (mean at 2^-16, 1/std at 2^-24) of a posterior latent, clamped: what each CDF value needs
    mu = min(max(mean16, -(np.int64(MEAN_LIMIT) << 16)), np.int64(MEAN_LIMIT) << 16)
    ls = min(max(log_std16, -(np.int64(LOG_STD_LIMIT) << 16)), np.int64(LOG_STD_LIMIT) << 16)
    # 1/std = 2^(-ls log2 e) at 2^-24
    y = -ls * log2e30  # at 2^-46
    n = y >> 46
    frac24 = (y - (n << 46)) >> 22
    v30 = _lookup(frac24, exp2_table, 0, 10)
    inv24 = v30 >> (6 - n) if n <= 6 else v30 << (n - 6)  # 2^n v30 2^-30 at 2^-24
    return mu, inv24


@nb.njit(cache=True, nogil=True, inline="always")
def _posterior_cdf_at(k, mu, inv24, edges16, precision, floor_one, phi_table):
    # the posterior's CDF at the lower edge of bucket k (0..K) on 2^precision: one entry of the table
    num_buckets = edges16.shape[0] + 1
    if k <= 0:
        return np.int64(0)
    if k >= num_buckets:
        return np.int64(1) << precision
    spread = (np.int64(1) << precision) - (num_buckets if floor_one else 0)
    t40 = (edges16[k - 1] - mu) * inv24
    p40 = _lookup(t40 >> 16, phi_table, -8, 10)
    # floor(p40 spread / 2^40) without 128-bit products: p40 = hi 2^20 + lo
    hi = p40 >> 20
    lo = p40 & ((np.int64(1) << 20) - 1)
    q = (hi * spread + ((lo * spread) >> 20)) >> 20
    return q + (k if floor_one else 0)


@nb.njit(cache=True, nogil=True)
def _posterior_cdf(mean16, log_std16, edges16, precision, floor_one, phi_table, exp2_table, log2e30,
                   out):
    for b in range(mean16.shape[0]):
        for d in range(mean16.shape[1]):
            mu, inv24 = _standardizer(mean16[b, d], log_std16[b, d], exp2_table, log2e30)
            for k in range(out.shape[2]):
                out[b, d, k] = _posterior_cdf_at(k, mu, inv24, edges16, precision, floor_one, phi_table)


@nb.njit(cache=True, nogil=True)
def _categorical(log2w, precision, exp2_table, out):
    num = log2w.shape[1]
    spread = (np.int64(1) << precision) - num
    w = np.empty(num, dtype=np.int64)
    for b in range(log2w.shape[0]):
        top = log2w[b, 0]
        arg = 0
        for k in range(1, num):
            if log2w[b, k] > top:
                top = log2w[b, k]
                arg = k
        total = np.int64(0)
        for k in range(num):
            dlt = log2w[b, k] - top  # <= 0, at 2^-32
            if dlt < -(np.int64(40) << 32):
                w[k] = 0
            else:
                n = dlt >> 32
                frac24 = (dlt - (n << 32)) >> 8
                w[k] = _lookup(frac24, exp2_table, 0, 10) >> (-n)
            total += w[k]
        used = np.int64(0)
        for k in range(num):
            f = (w[k] * spread) // total + 1
            w[k] = f
            used += f
        w[arg] += (np.int64(1) << precision) - used
        out[b, 0, 0] = 0
        acc = np.int64(0)
        for k in range(num):
            acc += w[k]
            out[b, 0, k + 1] = acc


# -- public integer functions ----------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def bucket_edges_fixed(log_num_bucket: int) -> np.ndarray:
    """Inner edges of the 2^log_num_bucket equal-mass buckets of N(0, 1) at 2^-16: int64 (K - 1,).

    Edge k is the smallest t (a multiple of 2^-16) whose tabulated CDF reaches k / K, found by an
    integer bisection over the same CDF the posterior uses.
    """
    k = 1 << log_num_bucket
    targets = np.arange(1, k, dtype=np.int64) << (40 - log_num_bucket)
    return _inverse_phi16(targets)


@functools.lru_cache(maxsize=16)
def bucket_centres_fixed(log_num_bucket: int) -> np.ndarray:
    """Each bucket's centre (CDF at its mid mass) at 2^-LATENT_BITS: int64 (K,)."""
    k = 1 << log_num_bucket
    targets = (2 * np.arange(k, dtype=np.int64) + 1) << (39 - log_num_bucket)
    c16 = _inverse_phi16(targets)
    out = (c16 + (1 << 3)) >> (16 - LATENT_BITS)
    out.setflags(write=False)
    return out


def _inverse_phi16(targets: np.ndarray) -> np.ndarray:
    lo = np.full(targets.shape, -(8 << 16), dtype=np.int64)
    hi = np.full(targets.shape, 8 << 16, dtype=np.int64)
    while np.any(hi - lo > 1):
        mid = (lo + hi) >> 1
        reached = phi40(mid << 8) >= targets
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid)
    hi.setflags(write=False)
    return hi


def phi40(x24: np.ndarray) -> np.ndarray:
    """The tabulated standard normal CDF at x 2^-24, as integers at 2^-40."""
    phi = tables()["phi"]
    flat = np.ascontiguousarray(x24, dtype=np.int64).ravel()
    out = np.empty_like(flat)
    _phi40(flat, phi, out)
    return out.reshape(np.shape(x24))


def _check_posterior_precision(log_num_bucket: int, precision: int) -> None:
    if not log_num_bucket < precision <= 40:
        raise McbitsError(f"prop_mprec={precision} must be in {log_num_bucket + 1}..40",
                          where="parameter prop_mprec")


def posterior_cdf_table(
    mean16: np.ndarray, log_std16: np.ndarray, log_num_bucket: int, precision: int, floor_one: bool = False
) -> np.ndarray:
    """Discretized Gaussian posteriors over the prior's buckets, in integers: int64 (B, D, K + 1).

    mean16, log_std16: (B, D) at 2^-16. The CDF at each bucket edge is Phi((edge - mean) / std)
    at 2^-40, floored onto 2^precision. Buckets may get zero width, and that is exact: a
    posterior bucket is only ever pushed after it was popped (or looked up) with the same table,
    and a zero-width bucket can never be popped, so no mass is wasted on far tails. `floor_one`
    instead keeps every bucket at least 1 wide (as the float path does), for comparison.
    """
    _check_posterior_precision(log_num_bucket, precision)
    t = tables()
    mean16 = np.ascontiguousarray(mean16, dtype=np.int64)
    log_std16 = np.ascontiguousarray(log_std16, dtype=np.int64)
    out = np.empty(mean16.shape + ((1 << log_num_bucket) + 1,), dtype=np.int64)
    _posterior_cdf(mean16, log_std16, bucket_edges_fixed(log_num_bucket), precision, floor_one,
                   t["phi"], t["exp2"], int(t["log2e"][0]), out)
    return out


def _check_cond_precision(precision: int) -> None:
    if not 1 <= precision <= 39:
        raise McbitsError(f"cond_mprec={precision} must be in 1..39 for exact arithmetic",
                          where="parameter cond_mprec")


def _bias_of(logits: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is None:
        return np.zeros(logits.shape[-1], dtype=np.float64)
    return np.ascontiguousarray(bias, dtype=np.float64)


def pixel_freq1(
    logits: np.ndarray, frac_bits: int, precision: int, bias: np.ndarray | None = None
) -> np.ndarray:
    """Frequency of a 1 at `precision` for integer logits (+ bias, per pixel) at 2^-frac_bits:
    int64, in 1..2^m - 1."""
    _check_cond_precision(precision)
    logits = np.ascontiguousarray(logits, dtype=np.float64)
    out = np.empty(logits.shape, dtype=np.int64)
    _pixel_freq1(logits, _bias_of(logits, bias), int(frac_bits), int(precision), tables()["sigmoid"], out)
    return out


SMALL_LOG2_PREC = 20  # frequencies (and bucket widths) up to 2^20 have their log2 cached in one table


@functools.lru_cache(maxsize=4)
def _small_log2(precision: int) -> np.ndarray:
    if precision > SMALL_LOG2_PREC:
        return np.zeros(0, dtype=np.int64)
    out = np.empty((1 << precision) + 1, dtype=np.int64)
    _log2_all(out.shape[0], tables()["log2"], out)
    return out


def logits_log2prob(
    logits: np.ndarray, frac_bits: int, images: np.ndarray, repeat: int, precision: int,
    bias: np.ndarray | None = None, first: int = 0, out: np.ndarray | None = None,
) -> np.ndarray:
    """log2 P(x|z) at 2^-32 for logit rows (R, P) (+ bias), row r scored against
    images[(first + r) // repeat]: int64 (R,), written into `out` when given. The same numbers as
    `bernoulli_log2prob(pixel_freq1(logits, ...), ...)`, in one pass. `first` lets a chunk of a
    step's rows be scored on its own (mcbits.coding.parallel)."""
    _check_cond_precision(precision)
    logits = np.ascontiguousarray(logits, dtype=np.float64)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if out is None:
        out = np.empty(logits.shape[0], dtype=np.int64)
    _logits_log2prob(logits, _bias_of(logits, bias), int(frac_bits), images, int(repeat), int(first),
                     int(precision), *scoring_tables(int(precision)), out)
    return out


def scoring_tables(precision: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """What `_logits_log2prob` scores with at `precision`: (sigmoid table, log2 table, cached log2
    of every frequency, largest logit with frequency 1, smallest with 2^precision - 1)."""
    t = tables()
    return (t["sigmoid"], t["log2"], _small_log2(precision), *_sigmoid_cuts(precision))


@functools.lru_cache(maxsize=8)
def _sigmoid_cuts(precision: int) -> tuple[int, int]:
    """(largest logit with frequency 1, smallest with frequency 2^precision - 1), at 2^-24."""
    low, high = _saturation_cuts(precision, tables()["sigmoid"])
    return int(low), int(high)


def bernoulli_log2prob(freq1: np.ndarray, bits: np.ndarray, precision: int) -> np.ndarray:
    """log2 quantized probability of 0/1 `bits` (R, P) under `freq1` (R, P): int64 (R,) at 2^-32."""
    freq1 = np.ascontiguousarray(freq1, dtype=np.int64)
    bits = np.ascontiguousarray(np.broadcast_to(bits, freq1.shape), dtype=np.uint8)
    out = np.empty(freq1.shape[0], dtype=np.int64)
    _bernoulli_log2prob(freq1, bits, int(precision), tables()["log2"], out)
    return out


def table_log2prob(cdf: np.ndarray, symbols: np.ndarray, precision: int) -> np.ndarray:
    """log2 quantized probability of particles (B, N, D) under tables (B, D, K + 1): int64 (B, N)."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int64)
    out = np.empty(symbols.shape[:2], dtype=np.int64)
    _table_log2prob(np.ascontiguousarray(cdf, dtype=np.int64), symbols, int(precision),
                    tables()["log2"], _small_log2(int(precision)), out)
    return out


def categorical_table(log2_weights: np.ndarray, precision: int) -> np.ndarray:
    """Quantize categoricals of integer log2-weights (B, N) at 2^-32 to tables (B, 1, N + 1).

    w_k = 2^(l_k - max l) at 2^-30; freq_k = floor(w_k (2^m - N) / sum w) + 1, the remainder to the
    first largest weight: every index codable, the table sums to exactly 2^m.
    """
    log2_weights = np.ascontiguousarray(log2_weights, dtype=np.int64)
    num = log2_weights.shape[1]
    if precision > MAX_CATEGORICAL_PREC or num > (1 << precision):
        raise McbitsError(
            f"{num} particles at mprec={precision} do not fit the exact categorical",
            where="parameter mprec",
            remedy=f"use {max(1, math.ceil(math.log2(num)))} <= mprec <= {MAX_CATEGORICAL_PREC}",
        )
    out = np.empty((log2_weights.shape[0], 1, num + 1), dtype=np.int64)
    _categorical(log2_weights, int(precision), tables()["exp2"], out)
    return out
