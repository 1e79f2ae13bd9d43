"""The arithmetic floor of exact coding on this machine: float64 GEMM throughput at the shapes a
coding step uses, and the time the decoder GEMMs of BB-IS(N) alone would take.

    python benchmarks/gemm_floor.py [--particles 50] [--images 10000] [--latent 50] [--hidden 200]

Prints one JSON object: GMAC/s per (BLAS threads, rows, layer shape) with numpy's BLAS (what the
coders use), the multiply-adds of encoding + decoding `images` images with BB-IS(N) (N decoder
rows per image each way for the weights, one row for x's pixels, one encoder row when decoding),
and the seconds those would take at the best measured throughput with one lane (N rows a step)
and with many lanes (1,000 rows a step). Run it on a quiet machine.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import click
import numpy as np
from threadpoolctl import threadpool_limits


def _gmacs(rows: int, k: int, n: int, threads: int, rng: np.random.Generator) -> float:
    # integer-valued operands like the fixed-point network's (16-bit)
    a = rng.integers(-32767, 32768, (rows, k)).astype(np.float64)
    b = rng.integers(-32767, 32768, (k, n)).astype(np.float64)
    out = np.empty((rows, n))
    reps = max(5, int(3e8 // (rows * k * n)))
    with threadpool_limits(threads, user_api="blas"):
        np.matmul(a, b, out=out)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                np.matmul(a, b, out=out)
            best = min(best, (time.perf_counter() - start) / reps)
    return rows * k * n / best / 1e9


@click.command()
@click.option("--particles", default=50, show_default=True)
@click.option("--images", default=10000, show_default=True)
@click.option("--latent", default=50, show_default=True)
@click.option("--hidden", default=200, show_default=True)
@click.option("--pixels", default=784, show_default=True)
def main(particles: int, images: int, latent: int, hidden: int, pixels: int) -> None:
    rng = np.random.default_rng(0)
    decoder = [(latent, hidden), (hidden, hidden), (hidden, pixels)]
    encoder = [(pixels, hidden), (hidden, hidden), (hidden, 2 * latent)]
    dec_macs = sum(k * n for k, n in decoder)
    enc_macs = sum(k * n for k, n in encoder)
    # encode: N weight rows + z_j's pixel row; decode: the same + the encoder row of q(z|x)
    macs = images * (2 * (particles + 1) * dec_macs + enc_macs)
    cores = os.cpu_count() or 1
    rates: dict[str, float] = {}
    floor: dict[str, float] = {}
    for rows, label in ((particles, "one lane"), (1000, "many lanes")):
        for threads in sorted({1, cores}):
            # a step's decoder is three GEMMs: its rate is all their MACs over all their seconds
            seconds = 0.0
            for k, n in decoder:
                rate = _gmacs(rows, k, n, threads, rng)
                rates[f"{threads} thread(s), {rows} rows, {k}x{n}"] = round(rate, 2)
                seconds += rows * k * n / (rate * 1e9)
            decoder_rate = rows * dec_macs / seconds / 1e9
            rates[f"{threads} thread(s), {rows} rows, decoder"] = round(decoder_rate, 2)
        # the floor: every core busy on its own rows at the one-thread rate, or BLAS's own threads
        one = rates[f"1 thread(s), {rows} rows, decoder"]
        many = rates[f"{cores} thread(s), {rows} rows, decoder"]
        floor[label] = round(macs / (max(one * cores, many) * 1e9), 2)
    print(json.dumps({
        "what": f"float64 GEMM floor of BB-IS({particles}), {images} images, encode + decode",
        "macs": macs, "gmacs": rates, "floor_s": floor,
        "machine": f"{platform.machine()}, {cores} cores, numpy {np.__version__}", "cpu": _cpu_model(),
        "command": "python benchmarks/gemm_floor.py " + " ".join(sys.argv[1:]),
        "blas": [f"{m['internal_api']} {m.get('version')}" for m in _blas_info()],
    }))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    return [m for m in threadpool_info() if m.get("user_api") == "blas"]


if __name__ == "__main__":
    main()
