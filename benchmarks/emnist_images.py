"""The benchmark images: the 10,000 EMNIST mnist-split test images, upright, in a seeded random
order, dynamically binarized with the same generator (numpy default_rng(0)).

    python benchmarks/emnist_images.py <mirror>/emnist/emnist-mnist-test-images-idx3-ubyte.gz OUT.npy
"""

from __future__ import annotations

import gzip
import sys

import numpy as np


def main(source: str, out: str) -> None:
    with gzip.open(source) as f:
        gray = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28).transpose(0, 2, 1)
    rng = np.random.default_rng(0)
    chosen = gray[rng.permutation(len(gray))].reshape(-1, 784)
    binary = (rng.random(chosen.shape) < chosen / 255.0).astype(np.uint8)
    np.save(out, binary.reshape(-1, 28, 28))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
