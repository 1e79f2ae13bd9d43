"""The model and images behind the golden bitstreams in tests/golden/.

Both come from numpy's PCG64 integer stream (the same numbers on every platform and numpy version
that keeps its stream guarantee) scaled by powers of two, so the float weights are exact and the
exact arithmetic turns them into the same integers everywhere. Regenerate the files with
`python tests/golden_model.py` only when the format or the arithmetic changes on purpose.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from coding_doubles import vae_layer_shapes

from mcbits.coding import bitstream, network
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig

GOLDEN = Path(__file__).with_name("golden")
LATENT, HIDDEN, PIXELS = 5, 16, 784
# stands in for a checkpoint's SHA-256 in the headers
MODEL_SHA256 = hashlib.sha256(b"golden-model").hexdigest()

# name: coder config overrides
CASES: dict[str, dict] = {
    "stochastic": dict(coder="StochasticCoder"),
    "bb-elbo": dict(coder="BitsBackCoder"),
    "bb-elbo-lanes3": dict(coder="BitsBackCoder", lanes=3),
    "bb-is4": dict(coder="ISBitsBackCoder", num_particles=4, lanes=2),
    "bb-cis4": dict(coder="CISBitsBackCoder", num_particles=4),
    "bb-elbo-upstream-precisions": dict(coder="BitsBackCoder", prop_mprec=16, whiten_prior=False),
}


def golden_state() -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(20261201))
    state = {}
    for name, shape in vae_layer_shapes(LATENT, HIDDEN, PIXELS).items():
        state[f"{name}.weight"] = (rng.integers(-4096, 4097, size=shape) / 8192.0).astype(np.float32)
        state[f"{name}.bias"] = (rng.integers(-4096, 4097, size=shape[0]) / 8192.0).astype(np.float32)
    state["enc_fc32.bias"] -= np.float32(1.0)  # posteriors narrower than the prior, as trained ones
    return state


def golden_model() -> network.ExactCodingModel:
    return network.ExactCodingModel(network.FixedPointVAE(golden_state()))


def golden_images() -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(7))
    # blobs rather than noise: a few filled rectangles per 28x28 image
    images = np.zeros((7, 28, 28), dtype=np.uint8)
    for img in images:
        for _ in range(3):
            r, c = rng.integers(0, 20, size=2)
            h, w = rng.integers(3, 9, size=2)
            img[r:r + h, c:c + w] = 1
    return images


def encode_case(name: str, path: Path) -> bitstream.EncodeResult:
    config = CoderConfig(seed=3, **CASES[name])
    # stored=False: the files keep the coded message (what they test), though raw bits are smaller
    return bitstream.encode_to_file(path, golden_images(), make_coder(golden_model(), config),
                                    model_sha256=MODEL_SHA256, stored=False)


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    np.save(GOLDEN / "images.npy", golden_images())
    for name in CASES:
        result = encode_case(name, GOLDEN / f"{name}.mcb")
        print(f"{name}: {result.file_bytes} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
