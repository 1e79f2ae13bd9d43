"""splitmix64: the counter-based generator behind every seeded value the coders rebuild.

One implementation serves both callers: `splitmix64` works on numpy uint64 scalars and arrays
(the coders' prior offsets), and `splitmix64_jit` is the same function compiled by numba for the
rANS loops (the virtual words under every tail). Both compute the splitmix64 finalizer of
seed + (counter + 1) * golden ratio, modulo 2^64.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_U64 = np.uint64
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed, counter):
    """splitmix64 finalizer of seed + (counter + 1) * golden ratio (uint64 in, uint64 out).

    Works elementwise on numpy uint64 arrays; wrap scalar calls in np.errstate(over="ignore").
    """
    z = seed + (counter + _U64(1)) * GOLDEN
    z = (z ^ (z >> _U64(30))) * MIX1
    z = (z ^ (z >> _U64(27))) * MIX2
    return z ^ (z >> _U64(31))


splitmix64_jit = nb.njit(cache=True, inline="always")(splitmix64)


@nb.njit(cache=True, nogil=True)
def _top_bits_grid(seed, ids, dim, shift, out):
    for b in range(ids.shape[0]):
        base = _U64(ids[b]) * _U64(dim)
        for d in range(dim):
            out[b, d] = np.int64(splitmix64_jit(seed, base + _U64(d)) >> _U64(shift))


def top_bits_grid(seed: int, ids: np.ndarray, dim: int, bits: int) -> np.ndarray:
    """The top `bits` bits of splitmix64(seed, id * dim + d) for each id and d < dim: int64 (len(ids), dim).

    The same numbers as the elementwise `splitmix64` (one compiled pass instead of several numpy
    temporaries: the coders call it once per step).
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty((ids.shape[0], int(dim)), dtype=np.int64)
    _top_bits_grid(_U64(seed), ids, int(dim), 64 - int(bits), out)
    return out
