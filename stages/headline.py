"""Headline stage: BB-IS and BB-CIS with `num_particles` particles on the in-distribution test set,
with the model trained with that many particles (`dvc exp run -S num_particles=5`).

    python -m stages.headline --dataset emnist-mnist

Reads the top-level `num_particles` and the `compress` block; writes metrics/headline.json and
bitstreams/headline/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcbits.errors import McbitsError
from stages import paths
from stages._common import load_params, stage_main, write_json_atomic
from stages.compress import compress_item


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--metrics", type=Path, default=paths.HEADLINE_METRICS)
    parser.add_argument("--bitstreams", type=Path, default=paths.HEADLINE_BITSTREAMS)
    args = parser.parse_args(argv)
    params = load_params("num_particles", "compress")
    n = params["num_particles"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise McbitsError(f"num_particles={n!r} must be a positive integer",
                          where="params.yaml: num_particles")
    checkpoint = paths.model_path(args.dataset, n)
    if not checkpoint.exists():
        raise McbitsError(
            f"no model trained with {n} particles: {checkpoint} is missing",
            where="params.yaml: num_particles",
            remedy="use one of grid.particles, or add it there so that the train stage makes it",
        )
    summary = {"num_particles": n, "dataset": args.dataset}
    for key, coder in (("bb_is", "ISBitsBackCoder"), ("bb_cis", "CISBitsBackCoder")):
        m = compress_item(coder=coder, particles=n, train=args.dataset, test=args.dataset, iterative=False,
                          params=params["compress"], bitstream=args.bitstreams / f"{key}.mcb")
        summary[key] = {k: m[k] for k in ("label", "net_bpd", "total_bpd", "ideal_bpd", "gap_pct",
                                          "images", "images_per_s", "decode_check")}
        print(f"{m['label']}: net {m['net_bpd']:.4f}, total {m['total_bpd']:.4f} bits/dim")
    write_json_atomic(args.metrics, summary)


if __name__ == "__main__":
    main()
