"""Headline stage: BB-IS and BB-CIS with `num_particles` particles on the in-distribution test set,
with the model trained with that many particles (`dvc exp run -S num_particles=5`).

    python -m stages.headline --dataset emnist-mnist

Reads the top-level `num_particles` (one of grid.particles: the models the grid trains), the grid's
particle counts and the `compress` block; writes metrics/headline.json (the rates of both runs),
details/headline.json and bitstreams/headline/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcbits.errors import McbitsError
from stages import paths
from stages._common import load_params, stage_main, write_details, write_log, write_metrics
from stages.compress import compress_item

CODERS = (("bb_is", "ISBitsBackCoder"), ("bb_cis", "CISBitsBackCoder"))


def headline_particles(value: object, grid_particles: object) -> int:
    """`num_particles`, which must be one of grid.particles (only those models exist)."""
    counts = grid_particles if isinstance(grid_particles, list) else []
    if isinstance(value, bool) or not isinstance(value, int) or value not in counts:
        raise McbitsError(
            f"num_particles={value!r} is not one of grid.particles {counts}: the headline coders use "
            "the model trained with that many particles, and the grid trains only those",
            where="params.yaml: num_particles",
            remedy=f"use one of {counts}, or add it to grid.particles so that the train stage makes "
            "the model (published checkpoints exist for 1, 5 and 50)",
        )
    return value


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--metrics", type=Path, default=paths.HEADLINE_METRICS)
    parser.add_argument("--details", type=Path, default=paths.HEADLINE_DETAILS)
    parser.add_argument("--bitstreams", type=Path, default=paths.HEADLINE_BITSTREAMS)
    args = parser.parse_args(argv)
    params = load_params("num_particles", "grid", "compress")
    n = headline_particles(params["num_particles"], (params["grid"] or {}).get("particles"))
    checkpoint = paths.model_path(args.dataset, n)
    if not checkpoint.exists():
        raise McbitsError(
            f"no model trained with {n} particles: {checkpoint} is missing",
            where="params.yaml: num_particles",
            remedy="run the train stage first (dvc repro does)",
        )
    metrics = {"num_particles": n}
    details = {"num_particles": n, "dataset": args.dataset}
    timings = {}
    for key, coder in CODERS:
        m, d, timings[key] = compress_item(coder=coder, particles=n, train=args.dataset, test=args.dataset,
                             iterative=None, params=params["compress"],
                             bitstream=args.bitstreams / f"{key}.mcb")
        metrics[key] = {"net": m["net_bpd"], "total": m["total_bpd"]}  # short columns: bb_is.net
        details[key] = {**d, **m}
        print(f"{d['label']}: net {m['net_bpd']:.4f}, total {m['total_bpd']:.4f} bits/dim")
    write_metrics(args.metrics, metrics)
    write_details(args.details, details)
    write_log(paths.LOGS_ROOT / "headline.json", timings)


if __name__ == "__main__":
    main()
