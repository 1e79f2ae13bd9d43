"""The long fuzz run of issue 13: hostile bitstreams of every coder against the decoder.

    python benchmarks/fuzz.py [--files 2000] [--seed 0] [--timeout 60] [--checkpoint model.pt]

Classes: header fields edited with the check recomputed (values on and beyond every limit), header
bytes edited / inserted / deleted and resealed, message bits flipped and resealed, truncations
(plain and resealed), bit flips anywhere and in the check, appended bytes (plain and resealed),
random and foreign files (an .npy, a zip, a version-2 file), and the base files against a wrong
checkpoint. Each decode runs in a forked child, killed after --timeout seconds (a hang). Prints
one JSON object: counts per verdict and per class, tracebacks, hangs, wrong outputs, the slowest
decode (and its class), the largest allocation peak (tracemalloc), and the largest resident-memory
growth and peak resident memory (ru_maxrss of the child, the interpreter included) of any decode.

The base files are TinyModel's (tests/coding_doubles.py, exact arithmetic by default); with
--checkpoint they are a real BinaryVAE's, in exact arithmetic, on random 28x28 images.
"""

from __future__ import annotations

import collections
import io
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzing  # noqa: E402  (tests/fuzzing.py: the mutations and verdicts the suite uses too)

_STATE: dict = {}


def _child(conn, data: bytes, case, path: str, sha: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    verdict = fuzzing.decode_verdict(data, case, Path(path), model_sha256=sha)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send((verdict.kind, verdict.seconds, verdict.peak_bytes, verdict.detail[-2000:],
               1024 * max(0, after - before), 1024 * after))
    conn.close()


def _run_one(data: bytes, case, path: Path, sha: str, timeout: float):
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, data, case, str(path), sha))
    start = time.perf_counter()
    proc.start()
    child.close()
    if parent.poll(timeout):
        result = parent.recv()
        proc.join()
        return result
    proc.kill()
    proc.join()
    return ("hang", time.perf_counter() - start, 0, "killed after the timeout", 0, 0)


class _RealCase(fuzzing.Case):
    """A base file of a real checkpoint (exact arithmetic)."""

    def model(self):
        return _STATE["model"]


def _real_cases(checkpoint: str, folder: Path) -> tuple[list, str]:
    from coding_doubles import random_binary_images

    from mcbits.coding import bitstream
    from mcbits.coding.coders import make_coder
    from mcbits.coding.config import CoderConfig
    from mcbits.loading import load_coding_model

    model, sha, _ = load_coding_model(checkpoint, "exact")
    _STATE["model"] = model
    images = random_binary_images(4, seed=5, density=0.15).reshape(4, 28, 28)
    cases = []
    for name, coder, particles, lanes in (("stochastic", "StochasticCoder", 1, 1),
                                          ("bb-elbo", "BitsBackCoder", 1, 2),
                                          ("bb-is", "ISBitsBackCoder", 3, 1),
                                          ("bb-cis", "CISBitsBackCoder", 3, 2)):
        path = folder / f"{name}.mcb"
        config = CoderConfig(coder=coder, num_particles=particles, lanes=lanes, seed=5)
        bitstream.encode_to_file(path, images, make_coder(model, config), model_sha256=sha, stored=False)
        cases.append(_RealCase(name, path.read_bytes(), images, "exact"))
    return cases, sha


def _foreign(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["npy", "zip", "version2", "random", "empty"])
    if kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((2, 784), np.uint8))
        return "foreign:npy", buffer.getvalue()
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("x", data)
        return "foreign:zip", buffer.getvalue()
    if kind == "version2":
        return "foreign:version2", b"MCBITS\x02\x00" + data[4:]
    if kind == "random":
        return "foreign:random", bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
    return "foreign:empty", b""


@click.command()
@click.option("--files", default=2000, show_default=True, help="Mutated files to decode.")
@click.option("--seed", default=0, show_default=True)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds before a decode is a hang.")
@click.option("--checkpoint", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Fuzz files of this BinaryVAE checkpoint instead of the TinyModel's.")
def main(files: int, seed: int, timeout: float, checkpoint: str | None) -> None:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="mcbits-fuzz-"))
    if checkpoint:
        cases, sha = _real_cases(checkpoint, folder)
    else:
        cases, sha = fuzzing.base_cases(folder), fuzzing.SHA
    verdicts: collections.Counter = collections.Counter()
    by_class: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    slowest = peak = rss = max_rss = 0.0
    slowest_class = ""
    start = time.perf_counter()
    jobs = [(case, "wrong_checkpoint", case.data, fuzzing.OTHER_SHA) for case in cases]
    for i in range(files - len(jobs)):
        case = rng.choice(cases)
        if i % 25 == 0:
            kind, data = _foreign(rng, case.data)
        else:
            kind, data = fuzzing.mutate(rng, case.data)
        jobs.append((case, kind, data, sha))
    for n, (case, kind, data, model_sha) in enumerate(jobs):
        verdict, seconds, peak_bytes, detail, rss_growth, rss_peak = _run_one(
            data, case, folder / f"f{n % 8}.mcb", model_sha, timeout)
        if seconds > slowest:
            slowest_class = f"{case.name} {kind}"
        max_rss = max(max_rss, rss_peak)
        verdicts[verdict] += 1
        by_class[kind.split(":")[0]][verdict] += 1
        slowest, peak, rss = max(slowest, seconds), max(peak, peak_bytes), max(rss, rss_growth)
        if verdict in ("traceback", "wrong", "hang") or seconds > 5 or peak_bytes > 1 << 30:
            failures.append({"case": case.name, "class": kind, "verdict": verdict,
                             "seconds": round(seconds, 2), "peak_mib": round(peak_bytes / 2**20, 1),
                             "detail": detail})
    report = {
        "files": len(jobs),
        "model": checkpoint or "tests/coding_doubles.TinyModel (exact)",
        "coders": [case.name for case in cases],
        "verdicts": dict(verdicts),
        "tracebacks": verdicts["traceback"],
        "hangs": verdicts["hang"],
        "wrong_outputs": verdicts["wrong"],
        "header_edits_resealed": sum(sum(c.values()) for k, c in by_class.items()
                                     if k in ("field", "header_bytes", "insert_resealed",
                                              "delete_resealed")),
        "by_class": {k: dict(v) for k, v in sorted(by_class.items())},
        "slowest_decode_s": round(slowest, 3),
        "slowest_decode": slowest_class,
        "max_rss_mib": round(max_rss / 2**20, 1),
        "max_allocation_peak_mib": round(peak / 2**20, 1),
        "max_rss_growth_mib": round(rss / 2**20, 1),
        "wall_s": round(time.perf_counter() - start, 1),
        "failures": failures[:20],
    }
    print(json.dumps(report, indent=2))
    for path in folder.iterdir():
        path.unlink()
    os.rmdir(folder)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
