"""What it costs to hand half of a step's work to a second core and wait for it, step after step, as
a one-lane coder must (its steps form a chain, so only work inside a step can be shared).

    python benchmarks/row_handoff.py [--work-us 400] [--steps 300] >> benchmarks/results-row-handoff.jsonl

A unit of work is a compiled loop (numba, nogil) of about --work-us microseconds. Timed per step,
the best of three rounds: one thread doing both units; Python's thread pool (what
mcbits.coding.parallel uses) running one unit on a worker while the caller runs the other; the
round trip of an empty job through that pool; and numba's prange over the two units under each
threading layer this machine has (each in its own process: a process keeps the layer it starts).
The workqueue layer's threads sleep between parallel regions, OpenMP's spin for a while first.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import click
import numba as nb
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm_floor import _cpu_model  # noqa: E402  (the sibling benchmarks' CPU name and timer)
from step_kernels import _microseconds  # noqa: E402


@nb.njit(nogil=True, cache=False)
def _work(values, iterations):
    total = 0.0
    for i in range(iterations):
        total += values[i % values.shape[0]] * 1.0000001
    return total


@nb.njit(nogil=True, parallel=True, cache=False)
def _two_units(values, iterations, out):
    for unit in nb.prange(2):
        out[unit] = _work(values, iterations)


def _iterations_for(microseconds: float, values: np.ndarray) -> int:
    _work(values, 1000)
    start = time.perf_counter()
    _work(values, 1_000_000)
    per_iteration = (time.perf_counter() - start) / 1_000_000
    return max(1000, int(microseconds * 1e-6 / per_iteration))


def _prange_us(layer: str, iterations: int, steps: int) -> float | None:
    # numba's prange over the two units under `layer`, in a fresh process (None if unavailable)
    code = (
        "import sys, numba, numpy as np\n"
        f"numba.config.THREADING_LAYER = {layer!r}\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "import row_handoff as rh\n"
        "values, out = np.random.default_rng(0).random(1000), np.zeros(2)\n"
        f"us = rh._microseconds(lambda: rh._two_units(values, {iterations}, out), {steps})\n"
        "print(numba.threading_layer(), us)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode != 0:
        return None
    name, us = run.stdout.split()
    return float(us) if name == layer else None


@click.command()
@click.option("--work-us", default=400.0, show_default=True, help="Length of one unit of work.")
@click.option("--steps", default=300, show_default=True, help="Steps per timing.")
def main(work_us: float, steps: int) -> None:
    values = np.random.default_rng(0).random(1000)
    iterations = _iterations_for(work_us, values)
    pool = ThreadPoolExecutor(1)

    def pooled() -> None:
        future = pool.submit(_work, values, iterations)
        _work(values, iterations)
        future.result()

    one_unit = _microseconds(lambda: _work(values, iterations), steps)
    timing = {
        "one_thread_both_units": _microseconds(lambda: (_work(values, iterations), _work(values, iterations)),
                                               steps),
        "thread_pool": _microseconds(pooled, steps),
        "thread_pool_empty_round_trip": _microseconds(lambda: pool.submit(int).result(), steps * 10),
    }
    pool.shutdown()
    for layer in ("workqueue", "omp", "tbb"):
        us = _prange_us(layer, iterations, steps)
        if us is not None:
            timing[f"numba_prange_{layer}"] = us
    serial = timing["one_thread_both_units"]
    out = {
        "unit_us": round(one_unit, 1),
        "us_per_step": {k: round(v, 1) for k, v in timing.items()},
        "speedup_over_one_thread": {k: round(serial / v, 2) for k, v in timing.items()
                                    if k not in ("one_thread_both_units", "thread_pool_empty_round_trip")},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, numba {nb.__version__}",
        "cpu": _cpu_model(),
        "command": "python benchmarks/row_handoff.py " + " ".join(sys.argv[1:]),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
