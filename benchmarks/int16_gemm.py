"""Could an integer GEMM beat the float64 floor? The last decoder layer as int16 products, exactly.

    python benchmarks/int16_gemm.py [--rows 50] [--inner 200] [--cols 784] >> results-int16-gemm.jsonl

The coders' GEMMs are float64 products of 16-bit integers (benchmarks/gemm_floor.py measures
them), because 16-bit weights times 16-bit activations summed over 200 inputs overflow float32's
24-bit mantissa. An int16 multiply-add (x86's `vpmaddwd`, 16 products per AVX2 instruction against
float64's 4) is exact only while its int32 sums stay below 2^31: 16-bit activations times 16-bit
weights reach 2^30 a product. So each weight is split into two 8-bit halves, w = 256 hi + lo with
lo in [-128, 127]: a half's product stays below 2^22 and 200 of them below 2^30, and the layer is
two int16 dot products per output, joined in int64. This measures that (numba; LLVM emits
`vpmaddwd` for the plain dot product) against numpy's float64 GEMM on one thread, checks that both
give the same integers, and prints one JSON line. Run it on a quiet machine.
"""

from __future__ import annotations

import json
import os
import platform
import sys

import click
import numba as nb
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm_floor import _cpu_model  # noqa: E402  (the sibling benchmarks' CPU name)
from step_kernels import _microseconds  # noqa: E402  (their best-of-rounds timer)


@nb.njit(cache=False, nogil=True)
def _dot_rows(a, w_t, out):
    # out[r, c] = sum_k a[r, k] w_t[c, k] in int32 (exact while every partial sum is below 2^31)
    for r in range(a.shape[0]):
        for c in range(w_t.shape[0]):
            total = np.int32(0)
            for k in range(a.shape[1]):
                total += np.int32(a[r, k]) * np.int32(w_t[c, k])
            out[r, c] = total


def _halves(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = ((weight + 128) % 256) - 128
    return ((weight - low) // 256).astype(np.int16), low.astype(np.int16)


@click.command()
@click.option("--rows", default=50, show_default=True, help="Rows a step (BB-IS(50), one lane: 50).")
@click.option("--inner", default=200, show_default=True)
@click.option("--cols", default=784, show_default=True)
@click.option("--reps", default=200, show_default=True)
def main(rows: int, inner: int, cols: int, reps: int) -> None:
    rng = np.random.default_rng(0)
    acts = rng.integers(-32767, 32768, (rows, inner)).astype(np.int16)
    weight = rng.integers(-32767, 32768, (cols, inner)).astype(np.int64)
    high, low = _halves(weight)
    out_high, out_low = np.empty((rows, cols), np.int32), np.empty((rows, cols), np.int32)
    acts64, weight64 = acts.astype(np.float64), np.ascontiguousarray(weight.T.astype(np.float64))
    out64 = np.empty((rows, cols))

    def int16_pair() -> None:
        _dot_rows(acts, high, out_high)
        _dot_rows(acts, low, out_low)

    with threadpool_limits(1, user_api="blas"):
        int16_pair()
        np.matmul(acts64, weight64, out=out64)
        exact = bool(np.array_equal(out_high.astype(np.int64) * 256 + out_low, out64.astype(np.int64)))
        int16_us = _microseconds(int16_pair, reps, rounds=5)
        float64_us = _microseconds(lambda: np.matmul(acts64, weight64, out=out64), reps, rounds=5)
    asm = _dot_rows.inspect_asm(_dot_rows.signatures[0])
    print(json.dumps({
        "what": "last decoder layer, one thread: two int16 GEMMs of 8-bit weight halves vs float64 GEMM",
        "shape": [rows, inner, cols], "exact": exact, "vpmaddwd_in_kernel": asm.count("vpmaddwd"),
        "int16_pair_us": round(int16_us, 1), "float64_us": round(float64_us, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
                   f"numba {nb.__version__}",
        "cpu": _cpu_model(), "command": "python benchmarks/int16_gemm.py " + " ".join(sys.argv[1:]),
    }))


if __name__ == "__main__":
    main()
