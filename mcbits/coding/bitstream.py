"""Compressed files: a header, the rANS message, and a checksum.

Layout: MAGIC (8 bytes: b"MCBITS" + 2-byte format version), header length (uint32 LE), the header
as UTF-8 JSON, the message bytes, then the SHA-256 of everything before it. The header carries every
parameter that shapes decoding (the coder config, the posterior's settings), the model
checkpoint's SHA-256, the image count and shape, the drawn-word counts that let the decoder restore
the message's initial state, a SHA-256 of the original images, and what encoded it (versions,
device), so that a decode that comes out different on another machine is reported as such.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import struct
from pathlib import Path
from typing import Any

import numpy as np

from mcbits import __version__
from mcbits.atomic import write_bytes_atomic
from mcbits.coding.coders import Coder, ProgressFn, make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.rans import Message
from mcbits.errors import McbitsError

FORMAT_VERSION = 2  # 2: exact arithmetic, "portable" flag; 1 (float only) is refused
MAGIC = b"MCBITS" + struct.pack("<H", FORMAT_VERSION)
_CHECKSUM_BYTES = 32


def images_digest(images: np.ndarray) -> str:
    """SHA-256 of 0/1 images (n, P), packed 8 pixels a byte: the identity a decode must reproduce."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    return hashlib.sha256(np.packbits(images, axis=1).tobytes() + repr(images.shape).encode()).hexdigest()


def _installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """What the coding arithmetic depends on: recorded at encode time, compared at decode time.

    torch's version is read from its installed metadata (the same string as torch.__version__),
    so the coding layer records it without importing torch.
    """
    import numba

    return {
        "mcbits": __version__,
        "torch": _installed_version("torch"),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "device": "cpu",
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


@dataclasses.dataclass
class EncodeResult:
    path: Path
    num_images: int
    num_dims: int
    file_bytes: int
    message_bits: int
    net_bits: float
    initial_bits: float

    @property
    def net_bpd(self) -> float:
        return self.net_bits / self.num_dims

    @property
    def total_bpd(self) -> float:
        return self.message_bits / self.num_dims

    @property
    def file_bpd(self) -> float:
        return 8 * self.file_bytes / self.num_dims


def pack(header: dict[str, Any], message: bytes) -> bytes:
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    body = MAGIC + struct.pack("<I", len(head)) + head + message
    return body + hashlib.sha256(body).digest()


def unpack(data: bytes, where: str = "bitstream") -> tuple[dict[str, Any], bytes]:
    """Split a file into (header, message), verifying magic, version and checksum."""
    remedy = "the file is damaged or not an mcbits bitstream; encode the images again"
    if len(data) < len(MAGIC) + 4 + _CHECKSUM_BYTES or data[:6] != MAGIC[:6]:
        raise McbitsError("not an mcbits bitstream (bad magic or too short)", where=where, remedy=remedy)
    version = struct.unpack("<H", data[6:8])[0]
    if version != FORMAT_VERSION:
        raise McbitsError(
            f"bitstream format version {version}; this mcbits reads version {FORMAT_VERSION}",
            where=where,
            remedy="decode it with the mcbits version that wrote it",
        )
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != checksum:
        raise McbitsError("bitstream checksum mismatch: the file is corrupt or truncated",
                          where=where, remedy=remedy)
    (head_len,) = struct.unpack("<I", body[8:12])
    try:
        header = json.loads(body[12 : 12 + head_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise McbitsError(f"unreadable bitstream header ({err})", where=where, remedy=remedy) from err
    return header, body[12 + head_len :]


def is_portable(coder: Coder) -> bool:
    """Whether the coder's bits depend on nothing but integers (exact arithmetic, plain posterior)."""
    return coder.config.arithmetic == "exact" and getattr(coder.model, "portable", True)


def encode_to_file(
    path: str | os.PathLike,
    images: np.ndarray,
    coder: Coder,
    *,
    model_sha256: str,
    image_shape: tuple[int, ...] | None = None,
    posterior: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> EncodeResult:
    """Encode 0/1 images (n, P) with `coder` and write the bitstream file atomically.

    posterior: the settings of the coder's posterior beyond the model (e.g. iterative inference),
    stored so that the decoder can rebuild the same posterior.
    """
    images = np.asarray(images)
    flat = images.reshape(images.shape[0], -1)
    message = coder.encode(flat, progress=progress)
    header = {
        "coder": coder.config.to_dict(),
        # exact arithmetic with a posterior computed in integers decodes on any machine
        "portable": is_portable(coder),
        "posterior": posterior or {},
        "model_sha256": model_sha256,
        "num_images": int(flat.shape[0]),
        "image_shape": list(image_shape or images.shape[1:]),
        "images_sha256": images_digest(flat),
        "drawn": [int(d) for d in message.drawn],
        "net_bits": message.net_bits,
        "encoder": environment(),
    }
    data = pack(header, message.to_bytes())
    write_bytes_atomic(path, data)
    return EncodeResult(
        path=Path(path),
        num_images=int(flat.shape[0]),
        num_dims=int(flat.size),
        file_bytes=len(data),
        message_bits=message.total_bits,
        net_bits=message.net_bits,
        initial_bits=message.initial_bits,
    )


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """Read and verify a bitstream file: (header, message bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise McbitsError(f"cannot read {path}: {err.strerror}", where=str(path)) from err
    return unpack(data, where=str(path))


def check_model(header: dict[str, Any], model_sha256: str, where: str) -> None:
    """Raise McbitsError unless the header names the checkpoint with this SHA-256."""
    if header.get("model_sha256") != model_sha256:
        raise McbitsError(
            f"the file was encoded with model {str(header.get('model_sha256'))[:12]}..., "
            f"not with this checkpoint ({model_sha256[:12]}...)",
            where=where,
            remedy="decode with the checkpoint the file was encoded with (same SHA-256)",
        )


def decode_from_file(
    path: str | os.PathLike,
    model: Any,
    *,
    model_sha256: str,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Decode a bitstream file with `model` (a CodingModel built for the header's posterior).

    Returns the images in their original shape. Raises McbitsError on a mismatched model, a
    corrupt file, or a decode that does not reproduce the encoded images' checksum.
    """
    header, payload = read_header(path)
    where = str(path)
    check_model(header, model_sha256, where)
    try:
        if not isinstance(header.get("coder"), dict):
            raise TypeError("coder is not a table of parameters")
        config = CoderConfig.from_dict(header["coder"])
        num = int(header["num_images"])
        shape = tuple(int(d) for d in header["image_shape"])
        drawn = [int(d) for d in header["drawn"]]
        expected_sha = str(header["images_sha256"])
        if num < 0 or int(np.prod(shape)) != model.num_pixels:
            raise ValueError(f"{num} images of shape {shape} for a model of {model.num_pixels} pixels")
    except (KeyError, TypeError, ValueError) as err:
        raise McbitsError(
            f"bitstream header is incomplete or inconsistent ({err!r})",
            where=where,
            remedy="the file was not written by mcbits encode; encode the images again",
        ) from err
    coder = make_coder(model, config)
    message = Message.from_bytes(
        payload, lanes=config.lanes, lprec=config.lprec, bprec=config.bprec, seed=config.seed, drawn=drawn,
    )
    images = coder.decode(message, num, progress=progress)
    if images_digest(images) != expected_sha or not message.is_initial:
        here = environment()
        if header.get("portable") is True:
            raise McbitsError(
                "decoded images do not match the encoded ones' checksum: the file was encoded in exact "
                "(portable) arithmetic, so its message or header is damaged, or it was written by "
                f"another mcbits build (encoded with {header.get('encoder')}, decoding with {here})",
                where=where,
                remedy="encode the images again; if this keeps happening with an unmodified file, "
                "report it as an mcbits bug",
            )
        raise McbitsError(
            "decoded images do not match the encoded ones' checksum. The file is not portable (float "
            "arithmetic or iterative inference): it decodes only with the same torch/numpy build and CPU "
            f"as the encoder, or it is damaged. Encoded with {header.get('encoder')}, decoding with {here}",
            where=where,
            remedy="decode on the machine that encoded it, or re-encode with exact arithmetic "
            "(the default) and without iterative inference for a portable file",
        )
    return images.reshape((num, *shape))
