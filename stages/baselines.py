"""Baselines stage: gzip, bz2, lzma and PNG on the images the coders compress.

    python -m stages.baselines --test emnist-mnist --metrics metrics/baselines/emnist-mnist.json \
        --details details/baselines/emnist-mnist.json

Reads compress.num_compress (the same first images as the compress stage: 1 up to the test set's
size). The metrics file holds bits/dim per codec; the details file the bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcbits.data.datasets import load_binarized
from mcbits.results.baselines import baseline_sizes
from stages import paths
from stages._common import load_params, num_images_param, stage_main, write_details, write_metrics


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test", required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--details", type=Path, required=True)
    args = parser.parse_args(argv)
    block = load_params("compress")["compress"] or {}
    images, _, meta = load_binarized(paths.prepared_test(args.test))
    num = num_images_param(block.get("num_compress"), "compress.num_compress", images.shape[0], args.test)
    images = images[:num]
    sizes = baseline_sizes(images)
    dims = images.size
    bpd = {name: 8 * size / dims for name, size in sizes.items()}
    write_metrics(args.metrics, {**bpd, "images": num})
    write_details(args.details, {
        "test": args.test,
        "test_display_name": meta.get("display_name", args.test),
        "images": num,
        "bytes": sizes,
    })
    print(", ".join(f"{k} {v:.4f}" for k, v in bpd.items()), "bits/dim")


if __name__ == "__main__":
    main()
