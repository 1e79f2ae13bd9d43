"""The small pieces of a coding step, timed: products of a few rows (compiled kernel vs BLAS), the
encoder's sparse first layer, and what handing a step's rows to a second thread costs.

    python benchmarks/step_kernels.py [--repeats 2000] > benchmarks/results-step-kernels.json

Prints one JSON object (each figure the best of three rounds): microseconds per call of the
fixed-point layer's product through numpy's BLAS and through mcbits.coding.network's few-rows
kernel (1 to 50 rows, the 200x784 and 50x200 layers); the first layer (784x200) on a 0/1 image,
dense vs sparse; and two threads each doing a 25-row product of the 200x784 layer, free-running
and handed over step by step (as the coders' row split does), against one thread doing both. One
BLAS thread throughout, as the coders use. Run it on a quiet machine.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import click
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from mcbits.coding import network

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm_floor import _cpu_model  # noqa: E402  (the sibling benchmark's CPU name)


def _microseconds(call, repeats: int, rounds: int = 3) -> float:
    # the best of a few rounds: a quiet machine's figure, less the odd interruption
    call()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, time.perf_counter() - start)
    return best / repeats * 1e6


def _layer(rng: np.random.Generator, inputs: int, outputs: int, in_bits: int, in_limit: int):
    weight = rng.normal(0, 0.1, size=(outputs, inputs))
    return network.FixedPointLinear(weight, rng.normal(0, 0.1, size=outputs), in_bits, in_limit, "bench")


@click.command()
@click.option("--repeats", default=2000, show_default=True, help="Calls per timing (fewer for 50 rows).")
def main(repeats: int) -> None:
    rng = np.random.default_rng(0)
    limit = network.ACT_LIMIT
    out: dict = {"products_us": {}, "first_layer_us": {}, "row_handoff": {}}
    with threadpool_limits(1, user_api="blas"):
        for inputs, outputs in ((200, 784), (50, 200)):
            layer = _layer(rng, inputs, outputs, 15, limit)
            for rows in (1, 2, 4, 8, 10, 25, 50):
                x = rng.integers(-limit, limit + 1, size=(rows, inputs)).astype(np.float64)
                res = np.empty((rows, outputs))
                n = repeats if rows <= 10 else max(100, repeats // 5)
                weight, weight32 = layer.weight_t, layer.weight_t32
                blas = _microseconds(lambda x=x, w=weight: x @ w, n)
                kernel = _microseconds(
                    lambda x=x, res=res, w=weight32: network._few_rows_product(x, w, res), n)
                out["products_us"][f"{rows}x{inputs}x{outputs}"] = {"blas": round(blas, 1),
                                                                      "kernel": round(kernel, 1)}
        first = _layer(rng, 784, 200, 0, 1)
        image = (rng.random((1, 784)) < 0.13).astype(np.uint8)  # MNIST's share of lit pixels
        out["first_layer_us"] = {
            "dense_blas": round(_microseconds(lambda: first.tanh(image.astype(np.float64),
                                                                 network.numpy_matmul), repeats), 1),
            "sparse": round(_microseconds(lambda: first.tanh_sparse(image), repeats), 1),
        }
        layer = _layer(rng, 200, 784, 15, limit)
        halves = [rng.integers(-limit, limit + 1, size=(25, 200)).astype(np.float64) for _ in range(2)]
        steps = repeats
        pool = ThreadPoolExecutor(2)

        def one_thread() -> None:
            for _ in range(steps):
                for x in halves:
                    x @ layer.weight_t

        def free_running() -> None:
            def work(x: np.ndarray) -> None:
                for _ in range(steps):
                    x @ layer.weight_t
            for future in [pool.submit(work, x) for x in halves]:
                future.result()

        def step_by_step() -> None:
            for _ in range(steps):
                future = pool.submit(lambda: halves[1] @ layer.weight_t)
                halves[0] @ layer.weight_t
                future.result()

        timing = {name: _microseconds(run, 1) / steps
                  for name, run in (("one_thread", one_thread), ("two_threads_free_running", free_running),
                                    ("two_threads_step_by_step", step_by_step))}
        pool.shutdown()
        out["row_handoff"] = {
            "us_per_step": {k: round(v, 1) for k, v in timing.items()},
            "speedup_free_running": round(timing["one_thread"] / timing["two_threads_free_running"], 2),
            "speedup_step_by_step": round(timing["one_thread"] / timing["two_threads_step_by_step"], 2),
            "handoff_us": round(timing["two_threads_step_by_step"] - timing["two_threads_free_running"], 1),
        }
    out.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}",
               cpu=_cpu_model(), blas=[f"{i['internal_api']} {i['version']}" for i in threadpool_info()],
               command="python benchmarks/step_kernels.py " + " ".join(sys.argv[1:]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
