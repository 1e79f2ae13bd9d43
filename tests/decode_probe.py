"""Decode bitstream files in a fresh process and report each decode's verdict, wall time and growth
of the process's peak resident memory (ru_maxrss), as JSON lines: tests/test_decode_bounds.py runs
it as a child so that a decode that reads or allocates too much shows in the child's RSS, never in
the test runner's.

    python tests/decode_probe.py JOBS.json   # [{"path", "arithmetic", "sha", "max_work"}, ...]

The model is tests/fuzzing.Case's TinyModel; a warm-up decode of the first job's base file (its
"warmup" path) compiles the coders before the baseline is taken.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coding_doubles import TinyModel  # noqa: E402

from mcbits.coding import bitstream  # noqa: E402
from mcbits.errors import McbitsError  # noqa: E402


def _rss() -> int:
    return 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(jobs_path: str) -> None:
    jobs = json.loads(Path(jobs_path).read_text())
    models = {a: TinyModel(latent_dim=4, num_pixels=64, seed=0, arithmetic=a) for a in ("exact", "float")}
    for warm in {job["warmup"] for job in jobs if job.get("warmup")}:
        bitstream.decode_from_file(warm, models["exact"], model_sha256=jobs[0]["sha"])
    for job in jobs:
        before = _rss()
        start = time.perf_counter()
        try:
            bitstream.decode_from_file(job["path"], models[job["arithmetic"]], model_sha256=job["sha"],
                                       max_work=job.get("max_work"))
            kind, detail = "decoded", ""
        except McbitsError as err:
            kind, detail = "error", err.what
        except Exception as err:  # noqa: BLE001 - what the test counts
            kind, detail = "traceback", f"{type(err).__name__}: {err}"
        seconds = time.perf_counter() - start
        print(json.dumps({"path": job["path"], "kind": kind, "detail": detail[:300], "seconds": seconds,
                          "rss_growth": _rss() - before, "rss": _rss()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
