"""Hostile bitstreams, shared by tests/test_fuzz.py (hypothesis, short) and benchmarks/fuzz.py
(long): base files of every coder, the ways to damage or edit them, and the verdict of decoding one.

A verdict is one of: "exact" (the original images, shape and dtype included), "error" (an
McbitsError), "wrong" (other images: never acceptable), "traceback" (any other exception: never
acceptable). Each comes with its wall time and the peak of memory allocated while decoding
(tracemalloc, which sees every numpy array).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import random
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from coding_doubles import TinyModel

from mcbits.coding import bitstream
from mcbits.coding import header as fmt
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.errors import McbitsError

SHA = "5e" * 32
OTHER_SHA = "a7" * 32

# (name, coder, particles, lanes, extra encode options)
CODERS = (
    ("stochastic", "StochasticCoder", 1, 1, {}),
    ("bb-elbo", "BitsBackCoder", 1, 2, {}),
    ("bb-is", "ISBitsBackCoder", 3, 1, {}),
    ("bb-cis", "CISBitsBackCoder", 3, 2, {}),
    ("bb-elbo-float", "BitsBackCoder", 1, 1, {"arithmetic": "float"}),
    ("bb-is-names", "ISBitsBackCoder", 2, 3, {"names": True}),
    ("bb-elbo-stored", "BitsBackCoder", 1, 1, {"stored": True}),
)

# values that sit on or beyond every limit a field has
INTERESTING_INTS = (0, 1, 2, 3, 5, 6, 7, 8, 9, 15, 16, 17, 20, 31, 32, 33, 39, 40, 63, 64, 65, 127, 128,
                    255, 256, 4096, 4097, 65535, 65536, 65537, 2**20, 2**20 + 1, 2**31, 2**32, 2**53,
                    2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**6, 10**8, 10**12, 2**70 - 1)

FIELDS = (
    "coder.coder", "coder.num_particles", "coder.lprec", "coder.bprec", "coder.log_num_bucket",
    "coder.prior_mprec", "coder.prop_mprec", "coder.cond_mprec", "coder.mprec", "coder.seed",
    "coder.lanes", "coder.whiten_prior", "coder.arithmetic", "portable", "stored", "num_images",
    "image_shape", "drawn", "padding", "step_slack", "posterior", "names", "encoder",
    "images_sha256", "model_sha256",
)


@dataclasses.dataclass
class Case:
    name: str
    data: bytes
    images: np.ndarray
    arithmetic: str

    def model(self) -> TinyModel:
        return TinyModel(latent_dim=4, num_pixels=64, seed=0, arithmetic=self.arithmetic)


def base_cases(folder: Path, num_images: int = 5) -> list[Case]:
    """One valid file per entry of CODERS, of `num_images` images (n, 8, 8)."""
    images = TinyModel(latent_dim=4, num_pixels=64, seed=0).sample_images(num_images, seed=3)
    images = images.reshape(num_images, 8, 8)
    cases = []
    for name, coder, particles, lanes, extra in CODERS:
        extra = dict(extra)
        arithmetic = extra.pop("arithmetic", "exact")
        names = [f"img-{i}.png" for i in range(num_images)] if extra.pop("names", False) else None
        model = TinyModel(latent_dim=4, num_pixels=64, seed=0, arithmetic=arithmetic)
        config = CoderConfig(coder=coder, num_particles=particles, lanes=lanes, seed=11,
                             arithmetic=arithmetic)
        path = folder / f"{name}.mcb"
        bitstream.encode_to_file(path, images, make_coder(model, config), model_sha256=SHA,
                                 names=names, stored=extra.pop("stored", False))
        cases.append(Case(name, path.read_bytes(), images, arithmetic))
    return cases


# --- mutations -------------------------------------------------------------------------------

def reseal(data: bytes) -> bytes:
    """Recompute the trailing check of a file (as a faulty writer or an attacker would)."""
    body = data[:-fmt.CHECK_BYTES]
    return body + hashlib.sha256(body).digest()[:fmt.CHECK_BYTES]


def header_size(data: bytes) -> int:
    """Bytes before the payload of a valid file."""
    return len(data) - len(bitstream.unpack(data)[1]) - fmt.CHECK_BYTES


def set_field(header: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    header = copy.deepcopy(header)
    if field.startswith("coder."):
        header["coder"][field[6:]] = value
    else:
        header[field] = value
    return header


def repack(data: bytes, field: str, value: Any) -> bytes | None:
    """The file with one header field set and the check recomputed; None if the layout cannot
    hold the value."""
    header, payload = bitstream.unpack(data)
    try:
        return bitstream.pack(set_field(header, field, value), payload)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None


def random_value(rng: random.Random, field: str, header: dict[str, Any]) -> Any:
    """A value for a header field: mostly on the limits, sometimes near the original."""
    lanes = header["coder"]["lanes"]
    num = header["num_images"]

    def an_int() -> int:
        if rng.random() < 0.6:
            return rng.choice(INTERESTING_INTS)
        return max(0, rng.randint(-3, 3) + rng.choice([num, lanes, 1, 8, 16, 20, 32, 64]))

    def ints(length: int) -> list[int]:
        return [an_int() if rng.random() < 0.5 else rng.randint(0, 40) for _ in range(length)]

    if field in ("coder.coder",):
        return rng.randint(0, 7)
    if field in ("coder.whiten_prior", "portable", "stored"):
        return rng.random() < 0.5
    if field == "coder.arithmetic":
        return rng.choice(["exact", "float"])
    if field == "padding":  # the writer makes the bytes: keep files small
        return rng.choice([0, 1, num - 1, num, num + 1, 200, 2**16, 2**22])
    if field.startswith("coder.") or field == "num_images":
        return an_int()
    if field == "image_shape":
        return ints(rng.choice([0, 1, 1, 2, 2, 3, 4, 5]))
    if field == "drawn":
        return ints(rng.choice([lanes, lanes, lanes - 1, lanes + 1, 0]))
    if field == "step_slack":
        length = rng.choice([lanes, lanes, lanes + 1])
        return {"drawn": ints(length), "words": ints(length)}
    if field == "posterior":
        if rng.random() < 0.2:
            return {}
        return {"iterative": {"steps": an_int(), "lr": rng.choice([0.01, 0.5, 1.0, 2.0, 1e-300, 1e300,
                                                                    float("nan"), float("inf"), -1.0]),
                              "num_particles": an_int(), "seed": an_int()}}
    if field == "names":
        count = rng.choice([num, num, num - 1, num + 1, 0])
        pool = ["a.png", "", ".", "..", "a/b", "x" * 300, "\u00e9t\u00e9.png", "n\0ul", "ok.png"]
        return [rng.choice(pool) for _ in range(max(0, count))]
    if field == "encoder":
        return rng.choice([{"torch": "0"}, {}, {"cpu": "x" * 5000}])
    if field in ("images_sha256", "model_sha256"):
        return "".join(rng.choice("0123456789abcdef") for _ in range(16))
    raise KeyError(field)


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random mutation of a valid file: (its class, the bytes)."""
    kind = rng.choice(["field", "field", "field", "header_bytes", "header_bytes", "message_bytes",
                       "truncate", "truncate_resealed", "flip", "check", "append", "append_resealed",
                       "insert_resealed", "delete_resealed", "random"])
    size = len(data)
    head = header_size(data)
    if kind == "field":
        header = bitstream.unpack(data)[0]
        for _ in range(20):
            field = rng.choice(FIELDS)
            out = repack(data, field, random_value(rng, field, header))
            if out is not None:
                return f"field:{field}", out
        return "field:none", data
    out = bytearray(data)
    if kind == "header_bytes":
        for _ in range(rng.choice([1, 1, 2, 3])):
            out[rng.randrange(4, head)] = rng.randrange(256)
        return kind, reseal(bytes(out))
    if kind == "message_bytes":
        if size - fmt.CHECK_BYTES > head:
            out[rng.randrange(head, size - fmt.CHECK_BYTES)] ^= 1 << rng.randrange(8)
        return kind, reseal(bytes(out))
    if kind == "truncate":
        return kind, data[:rng.randrange(size)]
    if kind == "truncate_resealed":
        return kind, reseal(data[:rng.randrange(fmt.CHECK_BYTES + 4, size)] + b"\0" * fmt.CHECK_BYTES)
    if kind == "flip":
        i = rng.randrange(size)
        out[i] ^= 1 << rng.randrange(8)
        return kind, bytes(out)
    if kind == "check":
        out[rng.randrange(size - fmt.CHECK_BYTES, size)] ^= 1 << rng.randrange(8)
        return kind, bytes(out)
    if kind == "append":
        return kind, data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    if kind == "append_resealed":
        extra = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return kind, reseal(data[:-fmt.CHECK_BYTES] + extra + data[-fmt.CHECK_BYTES:])
    if kind == "insert_resealed":
        i = rng.randrange(4, head)
        return kind, reseal(data[:i] + bytes([rng.randrange(256)]) + data[i:])
    if kind == "delete_resealed":
        i = rng.randrange(4, head)
        return kind, reseal(data[:i] + data[i + 1:])
    body = fmt.MAGIC + bytes([fmt.FORMAT_VERSION]) + bytes(rng.randrange(256)
                                                          for _ in range(rng.randint(0, 200)))
    return kind, reseal(body) if rng.random() < 0.5 else body


# --- verdicts ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Verdict:
    kind: str  # exact | error | wrong | traceback
    seconds: float
    peak_bytes: int
    detail: str = ""


def decode_verdict(data: bytes, case: Case, path: Path, model_sha256: str = SHA) -> Verdict:
    """Decode `data` (written to `path`) with the case's model: what came back, how fast, how big."""
    path.write_bytes(data)
    model = case.model()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        images = bitstream.decode_from_file(path, model, model_sha256=model_sha256)
    except McbitsError as err:
        kind, detail = "error", err.what
    except Exception:  # noqa: BLE001 - what the fuzzer counts
        kind, detail = "traceback", traceback.format_exc()
    else:
        same = (images.shape == case.images.shape and images.dtype == np.uint8
                and np.array_equal(images, case.images))
        kind, detail = ("exact", "") if same else ("wrong", f"shape {images.shape}")
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    if not tracing:
        tracemalloc.stop()
    return Verdict(kind, seconds, peak, detail)
