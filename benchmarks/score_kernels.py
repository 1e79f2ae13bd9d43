"""The importance weights' two scoring kernels, timed on a real model's numbers: log2 P(x|z) from the
decoder's logits (mcbits.coding.exact.logits_log2prob) and log2 Q(z|x) of the particles under
their posterior tables (exact.table_log2prob), for one lane's step of BB-IS(50) (50 rows) and
twenty lanes' (1,000 rows); and the whole of a step's pixel scores (ExactCodingModel.pixel_log2prob:
the decoder's GEMMs, tanh layers and scores) on one and two threads, each chunk of rows one compiled
call (mcbits.coding.blas) or, with that switched off, numpy's GEMMs per chunk on the thread pool.

    python benchmarks/score_kernels.py CHECKPOINT IMAGES.npy [--repeats 200] > scores.json

The particles are drawn (seeded) from each image's discretized posterior, as the coder's pops
would; the two kernels are called through their public functions, so that part times any
commit (run it with PYTHONPATH set to the checkout; the pixel scores need mcbits.coding.blas).
Each figure is the best of three rounds, microseconds per call, one BLAS thread. Run it on a quiet
machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import click
import numpy as np
from threadpoolctl import threadpool_limits

from mcbits.coding import exact
from mcbits.loading import load_coding_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm_floor import _cpu_model  # noqa: E402  (the sibling benchmarks' CPU name and timer)
from step_kernels import _microseconds  # noqa: E402

LOG_NUM_BUCKET, PROP_PREC, COND_PREC, PARTICLES = 8, 16, 16, 50


def _particles(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # (lanes, N, D) buckets drawn from each latent's table: a uniform point's bucket, as a pop finds
    lanes, dim, _ = cdf.shape
    points = rng.integers(0, 1 << PROP_PREC, size=(lanes, PARTICLES, dim))
    out = np.empty_like(points)
    for lane in range(lanes):
        for d in range(dim):
            out[lane, :, d] = np.searchsorted(cdf[lane, d], points[lane, :, d], side="right") - 1
    return out


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("images_npy", type=click.Path(exists=True, dir_okay=False))
@click.option("--repeats", default=200, show_default=True, help="Calls per timing (a tenth for 1,000 rows).")
def main(checkpoint: str, images_npy: str, repeats: int) -> None:
    model, _, _ = load_coding_model(checkpoint, "exact", "cpu")
    images = np.load(images_npy).reshape(-1, model.num_pixels)[:20].astype(np.uint8)
    rng = np.random.default_rng(0)
    mean16, log_std16 = model.network.posterior_fixed(images)
    cdf = exact.posterior_cdf_table(mean16, log_std16, LOG_NUM_BUCKET, PROP_PREC)
    particles = _particles(cdf, rng)
    centres = exact.bucket_centres_fixed(LOG_NUM_BUCKET)
    out: dict = {"logits_log2prob_us": {}, "table_log2prob_us": {}}
    with threadpool_limits(1, user_api="blas"):
        for lanes in (1, 20):
            rows = particles[:lanes].reshape(lanes * PARTICLES, -1)
            product, bias, bits = model.network.logits_fixed(centres[rows])
            n = repeats if lanes == 1 else max(10, repeats // 10)
            out["logits_log2prob_us"][f"{lanes * PARTICLES}x{model.num_pixels}"] = round(_microseconds(
                lambda p=product, b=bias, k=bits, x=images[:lanes]: exact.logits_log2prob(
                    p, k, x, PARTICLES, COND_PREC, b), n), 1)
            out["table_log2prob_us"][f"{lanes}x{PARTICLES}x{model.latent_dim}"] = round(_microseconds(
                lambda q=cdf[:lanes], s=particles[:lanes]: exact.table_log2prob(q, s, PROP_PREC), n), 1)
        try:
            from mcbits.coding import blas
        except ImportError:  # a commit before the compiled row chunks
            blas = None
        if blas is not None:
            out["pixel_log2prob_us"] = {}
            rows = particles[:1].reshape(PARTICLES, -1)
            for path in ("compiled", "numpy"):
                saved = blas.dgemm_address
                if path == "numpy":
                    blas.dgemm_address = lambda: 0
                try:
                    for threads in (1, 2):
                        def score(t: int = threads) -> None:
                            model.pixel_log2prob(rows, images[:1], PARTICLES, LOG_NUM_BUCKET, COND_PREC,
                                                 threads=t)
                        key = f"{path}, {threads} thread(s), 50 rows"
                        out["pixel_log2prob_us"][key] = round(_microseconds(score, repeats), 1)
                finally:
                    blas.dgemm_address = saved
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(exact.__file__)).stdout.strip()
    out.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}",
               cpu=_cpu_model(), commit=commit,
               command="python benchmarks/score_kernels.py " + " ".join(sys.argv[1:]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
