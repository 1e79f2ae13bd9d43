"""General-purpose codecs on the same binary images, for orientation beside the McBits coders.

gzip, bz2 and lzma compress the packed bits of all images as one stream; PNG codes each image as a
1-bit grayscale file (the sum of the file sizes). All sizes are real encoded bytes.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib

import numpy as np


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_1bit(image: np.ndarray) -> bytes:
    """A 1-bit grayscale PNG (white = 1) of one binary image (H, W), at zlib's best compression."""
    height, width = image.shape
    rows = np.packbits(image.astype(np.uint8), axis=1)  # each row padded to whole bytes, MSB first
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 (None) per scanline
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def baseline_sizes(images: np.ndarray, shape: tuple[int, int] = (28, 28)) -> dict[str, int]:
    """Compressed sizes in bytes of 0/1 images (n, H*W) under each general-purpose codec."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    packed = np.packbits(images, axis=1).tobytes()
    return {
        "gzip": len(gzip.compress(packed, compresslevel=9, mtime=0)),
        "bz2": len(bz2.compress(packed, compresslevel=9)),
        "lzma": len(lzma.compress(packed, preset=9 | lzma.PRESET_EXTREME)),
        "png": sum(len(png_1bit(img.reshape(shape))) for img in images),
    }
