"""Reading and writing idx files (the MNIST/EMNIST container format), gzipped or not.

An idx file is a 4-byte big-endian magic number (two zero bytes, a type byte, 0x08 for unsigned
bytes, and the number of dimensions), one big-endian uint32 per dimension, then the data in C
order. Images are idx3 (magic 2051: count x rows x cols), labels idx1 (magic 2049: count).

Gzip is recognized by the file's first two bytes, not by its name, so a decompressed copy of a
`.gz` file (as some sources serve them) reads the same way.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mcbits.atomic import write_bytes_atomic
from mcbits.errors import McbitsError

IDX1_MAGIC = 2049  # unsigned bytes, 1 dimension (labels)
IDX3_MAGIC = 2051  # unsigned bytes, 3 dimensions (images)
GZIP_MAGIC = b"\x1f\x8b"

_REMEDY = (
    "the file is damaged or is not what its name says: delete it and fetch it again "
    "(mcbits fetch, or rerun the prepare stage), or check the mirror copy against its checksum"
)


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def read_bytes(path: str | os.PathLike) -> bytes:
    """Return a file's content, decompressed when it is gzip; a damaged gzip stream is an error."""
    path = Path(path)
    try:
        if not is_gzip(path):
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as err:
        raise McbitsError(
            f"idx file {path} does not exist",
            where=str(path),
            remedy="fetch it first (mcbits fetch, or the prepare stage)",
        ) from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        # EOFError is what gzip raises for a stream cut short: the usual broken download.
        raise McbitsError(
            f"idx file {path} is a corrupt or truncated gzip stream ({err})",
            where=str(path),
            remedy=_REMEDY,
        ) from err


def _parse(path: Path, raw: bytes, magic: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Check the header against `magic` and return (dims, flat uint8 data)."""
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(raw) < 4:
        raise McbitsError(
            f"idx file {path} is truncated: {len(raw)} bytes, not even a magic number",
            where=str(path),
            remedy=_REMEDY,
        )
    (actual,) = struct.unpack(">I", raw[:4])
    if actual != magic:
        kind = {IDX1_MAGIC: "idx1 labels", IDX3_MAGIC: "idx3 images"}[magic]
        raise McbitsError(
            f"idx file {path} has magic number {actual} (0x{actual:08x}); expected {magic} "
            f"(0x{magic:08x}) for {kind}",
            where=str(path),
            remedy=_REMEDY,
        )
    if len(raw) < header_len:
        raise McbitsError(
            f"idx file {path} is truncated inside its header ({len(raw)} of {header_len} bytes)",
            where=str(path),
            remedy=_REMEDY,
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected_len = int(np.prod(dims, dtype=np.int64))
    actual_len = len(raw) - header_len
    if actual_len != expected_len:
        state = "truncated" if actual_len < expected_len else "longer than its header says"
        raise McbitsError(
            f"idx file {path} is {state}: header {' x '.join(map(str, dims))} needs "
            f"{expected_len} data bytes, the file has {actual_len}",
            where=str(path),
            remedy=_REMEDY,
        )
    return dims, np.frombuffer(raw, dtype=np.uint8, offset=header_len)


def _check_count(path: Path, what: str, count: int, expected: int | None) -> None:
    if expected is not None and count != expected:
        raise McbitsError(
            f"idx file {path} holds {count} {what}; expected {expected}",
            where=str(path),
            remedy=_REMEDY,
        )


def read_images(
    path: str | os.PathLike,
    *,
    expected_count: int | None = None,
    shape: tuple[int, int] = (28, 28),
) -> np.ndarray:
    """Read an idx3 image file into a uint8 array (count, rows, cols), checking count and shape."""
    path = Path(path)
    dims, data = _parse(path, read_bytes(path), IDX3_MAGIC)
    if tuple(dims[1:]) != tuple(shape):
        raise McbitsError(
            f"idx file {path} holds {dims[1]}x{dims[2]} images; expected {shape[0]}x{shape[1]}",
            where=str(path),
            remedy=_REMEDY,
        )
    _check_count(path, "images", dims[0], expected_count)
    return data.reshape(dims)


def read_labels(path: str | os.PathLike, *, expected_count: int | None = None) -> np.ndarray:
    """Read an idx1 label file into a uint8 array (count,), checking the count."""
    path = Path(path)
    dims, data = _parse(path, read_bytes(path), IDX1_MAGIC)
    _check_count(path, "labels", dims[0], expected_count)
    return data


def _write(path: Path, magic: int, array: np.ndarray, compress: bool | None) -> None:
    if compress is None:
        compress = path.suffix == ".gz"
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        # mtime=0 keeps the bytes reproducible (fixtures with fixed checksums).
        payload = gzip.compress(payload, mtime=0)
    write_bytes_atomic(path, payload)


def write_images(
    path: str | os.PathLike, images: np.ndarray, *, compress: bool | None = None
) -> None:
    """Write uint8 images (count, rows, cols) as idx3; gzip when `compress` (default: by `.gz`)."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (count, rows, cols), got {images.dtype} {images.shape}"
        )
    _write(Path(path), IDX3_MAGIC, images, compress)


def write_labels(
    path: str | os.PathLike, labels: np.ndarray, *, compress: bool | None = None
) -> None:
    """Write labels (count,) in 0..255 as idx1, gzipped when `compress` (default: by `.gz`)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() > 255)):
        raise ValueError("labels must be a 1-d array of values in 0..255")
    _write(Path(path), IDX1_MAGIC, labels.astype(np.uint8), compress)
