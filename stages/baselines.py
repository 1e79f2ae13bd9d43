"""Baselines stage: gzip, bz2, lzma and PNG on the images the coders compress.

    python -m stages.baselines --test emnist-mnist --metrics metrics/baselines/emnist-mnist.json

Reads compress.num_compress (the same first images as the compress stage).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcbits.data.datasets import load_binarized
from mcbits.results.baselines import baseline_sizes
from stages import paths
from stages._common import load_params, stage_main, write_json_atomic


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test", required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    num = load_params("compress")["compress"]["num_compress"]
    images, _, meta = load_binarized(paths.prepared_test(args.test))
    images = images[:num]
    sizes = baseline_sizes(images)
    dims = images.size
    write_json_atomic(args.metrics, {
        "test": args.test,
        "test_display_name": meta.get("display_name", args.test),
        "images": int(images.shape[0]),
        "bytes": sizes,
        "bpd": {name: 8 * size / dims for name, size in sizes.items()},
    })
    print(", ".join(f"{k} {8 * v / dims:.4f}" for k, v in sizes.items()), "bits/dim")


if __name__ == "__main__":
    main()
