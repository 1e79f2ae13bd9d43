"""Discretized Gaussian posteriors coded without building their tables (exact arithmetic).

A posterior table holds the CDF of q(z_d|x) at every bucket edge: 2^log_num_bucket + 1 values for
each latent. A coder that pushes or pops one symbol per latent (BB-ELBO, the Stochastic coder's
z) reads two of them, or the nine or so a binary search visits, so here each CDF value is computed
where the push or pop needs it, from the latent's (mean, 1/std), by the very function that fills
the tables (`exact._posterior_cdf_at`): the bits are those of the table codec, at a fraction of
the work (256 buckets: about 12,800 CDF values a step for 50 latents, against under 500).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mcbits.coding.exact import (
    _check_posterior_precision,
    _posterior_cdf_at,
    _standardizer,
    bucket_edges_fixed,
    tables,
)
from mcbits.coding.rans import Message, _check_freq, _decode, _encode, _put_word, _take_word

_U64 = np.uint64

# The kernels write out rANS's renormalization and refill loops as rans.py's own kernels do (a
# shared inlined helper with a loop costs numba's reference counting on every symbol: see there).


@nb.njit(cache=True, nogil=True)
def _push_gaussian(heads, tails, lens, drawn, seeds, lprec, bprec, mean16, log_std16, syms, prec,
                   edges16, phi_table, exp2_table, log2e30):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    shift = lp - pr + bp  # x >> shift >= freq: the push would overflow the head
    word_mask = (_U64(1) << bp) - _U64(1)
    for lane in range(syms.shape[0]):
        x = heads[lane]
        for i in range(syms.shape[1] - 1, -1, -1):
            mu, inv24 = _standardizer(mean16[lane, i], log_std16[lane, i], exp2_table, log2e30)
            s = syms[lane, i]
            low = _posterior_cdf_at(s, mu, inv24, edges16, prec, False, phi_table)
            high = _posterior_cdf_at(s + 1, mu, inv24, edges16, prec, False, phi_table)
            start = _U64(low)
            freq = _U64(high) - start
            _check_freq(freq)
            while (x >> shift) >= freq:
                _put_word(lane, x & word_mask, tails, lens, drawn, seeds, bp)
                x = x >> bp
            x = _encode(x, start, freq, pr)
        heads[lane] = x


@nb.njit(cache=True, nogil=True)
def _pop_gaussian(heads, tails, lens, drawn, seeds, lprec, bprec, mean16, log_std16, out, prec,
                  edges16, phi_table, exp2_table, log2e30):
    lp, bp, pr = _U64(lprec), _U64(bprec), _U64(prec)
    lower = _U64(1) << lp
    mask = (_U64(1) << pr) - _U64(1)
    last = edges16.shape[0] + 1  # the number of buckets: CDF values 0..last
    for lane in range(out.shape[0]):
        x = heads[lane]
        for i in range(out.shape[1]):
            mu, inv24 = _standardizer(mean16[lane, i], log_std16[lane, i], exp2_table, log2e30)
            cf = np.int64(x & mask)
            # the bucket s with cdf(s) <= cf < cdf(s + 1), as the table codec's binary search finds it
            lo, hi = 0, last
            low, high = np.int64(0), np.int64(1) << prec
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                value = _posterior_cdf_at(mid, mu, inv24, edges16, prec, False, phi_table)
                if value <= cf:
                    lo, low = mid, value
                else:
                    hi, high = mid, value
            start = _U64(low)
            x = _decode(x, start, _U64(high) - start, _U64(cf), pr)
            while x < lower:
                x = (x << bp) | _take_word(lane, tails, lens, drawn, seeds, bp)
            out[lane, i] = lo
        heads[lane] = x


def _arguments(mean16: np.ndarray, log_std16: np.ndarray, log_num_bucket: int,
               precision: int) -> tuple:
    _check_posterior_precision(log_num_bucket, precision)
    t = tables()
    return (np.ascontiguousarray(mean16, dtype=np.int64), np.ascontiguousarray(log_std16, dtype=np.int64),
            bucket_edges_fixed(log_num_bucket), t["phi"], t["exp2"], int(t["log2e"][0]))


def push(msg: Message, mean16: np.ndarray, log_std16: np.ndarray, buckets: np.ndarray,
         log_num_bucket: int, precision: int) -> None:
    """Push buckets (b, D) under the posteriors (mean, log std at 2^-16, (b, D)) on lanes 0..b-1:
    the bits of pushing them with `exact.posterior_cdf_table`'s tables."""
    mean16, log_std16, edges16, phi, exp2, log2e30 = _arguments(mean16, log_std16, log_num_bucket,
                                                                 precision)
    buckets = np.ascontiguousarray(buckets, dtype=np.int64)
    if buckets.shape != mean16.shape or log_std16.shape != mean16.shape:
        raise ValueError(f"buckets {buckets.shape} for posteriors {mean16.shape}, {log_std16.shape}")
    state = msg.block_state(buckets.shape[0], (buckets.shape[1], precision))
    _push_gaussian(*state, mean16, log_std16, buckets, precision, edges16, phi, exp2, log2e30)


def pop(msg: Message, mean16: np.ndarray, log_std16: np.ndarray, log_num_bucket: int,
        precision: int) -> np.ndarray:
    """Pop the buckets (b, D) that `push` pushed with these posteriors: int64."""
    mean16, log_std16, edges16, phi, exp2, log2e30 = _arguments(mean16, log_std16, log_num_bucket,
                                                                 precision)
    if log_std16.shape != mean16.shape:
        raise ValueError(f"posterior means {mean16.shape} and log stds {log_std16.shape} differ")
    out = np.empty(mean16.shape, dtype=np.int64)
    _pop_gaussian(*msg.block_state(mean16.shape[0], (0, precision)), mean16, log_std16, out, precision,
                  edges16, phi, exp2, log2e30)
    return out
