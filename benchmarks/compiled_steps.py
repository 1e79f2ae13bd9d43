"""A coder's compiled steps (mcbits.coding.fused) against its step program, in one process.

    python benchmarks/compiled_steps.py CHECKPOINT IMAGES.npy [--coder ISBitsBackCoder]
        [--particles 50] [--lanes 1] [--images 500] [--threads 1] [--rounds 6] >> steps.jsonl

Two coders with one config: one runs its compiled steps, the other has them switched off and runs
the step program (the same bytes: tests/test_fused.py). Rounds alternate the two, each an encode
and a decode of the images, timed as wall and CPU seconds. Alternating in one process leaves out
what separate runs on a shared virtual machine add (its speed moves by half within an hour), and
with one thread CPU seconds are what the step costs, whatever else the host runs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import click
import numpy as np

from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.loading import load_coding_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm_floor import _cpu_model  # noqa: E402  (the sibling benchmarks' CPU name)


def _round_trip(coder, images: np.ndarray, threads: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    message = coder.encode(images, threads=threads)
    decoded = coder.decode(message, images.shape[0], threads=threads)
    if not np.array_equal(decoded, images):
        raise SystemExit("a round trip did not give the images back")
    return time.perf_counter() - wall, time.process_time() - cpu


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("images_npy", type=click.Path(exists=True, dir_okay=False))
@click.option("--coder", default="ISBitsBackCoder", show_default=True)
@click.option("--particles", default=50, show_default=True)
@click.option("--lanes", default=1, show_default=True)
@click.option("--images", "count", default=500, show_default=True)
@click.option("--threads", default=1, show_default=True)
@click.option("--rounds", default=6, show_default=True)
def main(checkpoint: str, images_npy: str, coder: str, particles: int, lanes: int, count: int,
         threads: int, rounds: int) -> None:
    model, _, _ = load_coding_model(checkpoint, "exact", "cpu")
    images = np.load(images_npy).reshape(-1, model.num_pixels)[:count].astype(np.uint8)
    config = CoderConfig(coder=coder, num_particles=particles, lanes=lanes)
    compiled, program = make_coder(model, config), make_coder(model, config)
    if compiled.compiled_step is None:
        raise SystemExit(f"{coder} has no compiled step for this model")
    program.__dict__["compiled_step"] = None  # the cached property, switched off
    _round_trip(compiled, images[:lanes], threads)  # compile and warm both before timing
    _round_trip(program, images[:lanes], threads)
    timings: dict[str, dict[str, list[float]]] = {name: {"wall_s": [], "cpu_s": []}
                                                  for name in ("compiled", "program")}
    for _ in range(rounds):
        for name, which in (("compiled", compiled), ("program", program)):
            wall, cpu = _round_trip(which, images, threads)
            timings[name]["wall_s"].append(round(wall, 3))
            timings[name]["cpu_s"].append(round(cpu, 3))
    medians = {name: {kind: float(np.median(values)) for kind, values in t.items()}
               for name, t in timings.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip()
    print(json.dumps({
        "coder": coder, "num_particles": particles, "lanes": lanes, "images": count, "threads": threads,
        "rounds": timings, "medians": medians,
        "cpu_s_program_over_compiled": round(medians["program"]["cpu_s"] / medians["compiled"]["cpu_s"], 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}",
        "cpu": _cpu_model(), "commit": commit,
        "command": "python benchmarks/compiled_steps.py " + " ".join(sys.argv[1:]),
    }))


if __name__ == "__main__":
    main()
