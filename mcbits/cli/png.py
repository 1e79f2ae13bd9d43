"""PNG files checked before any pixel is trusted, and the samples Pillow would narrow.

`parse_png` walks a PNG's chunks itself: every chunk whole and matching its CRC, the IHDR first
(its size checked before anything else is read, so a header claiming 30000x30000 pixels costs
nothing), text chunks no larger than MAX_TEXT_BYTES each (compressed ones decompressed with that
bound) and MAX_ALL_TEXT_BYTES in all, the image data decompressing to exactly the bytes its size,
bit depth, colour type and interlacing need (Pillow fills the rows of a truncated image with black
without a word), every row's filter type valid, and an IEND. `samples` unfilters (and
de-interlaces) the image data into the file's own sample values, for 16-bit images, which Pillow
narrows to 8 bits (colour) or cannot convert to grayscale without clipping.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_BYTES = 1 << 20  # one text chunk, decompressed (Pillow's PngImagePlugin.MAX_TEXT_CHUNK)
MAX_ALL_TEXT_BYTES = 8 << 20  # every text chunk of a file together
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples a pixel
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: (x0, y0, dx, dy)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


class PngProblem(Exception):
    """Why a file is not a readable PNG; `kind` is "damaged", "size" or "text"."""

    def __init__(self, kind: str, detail: str, size: tuple[int, int] | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.size = kind, detail, size


@dataclasses.dataclass(frozen=True)
class Png:
    width: int
    height: int
    depth: int  # bits a sample
    colour: int  # PNG colour type
    interlaced: bool
    raw: bytes  # the decompressed image data (filter bytes and filtered rows)
    trns: bytes | None  # the tRNS chunk's data, if any


def _passes(png_width: int, png_height: int, interlaced: bool) -> list[tuple[int, int, int, int, int, int]]:
    """(x0, y0, dx, dy, pass width, pass height) of every non-empty pass."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    out = []
    for x0, y0, dx, dy in passes:
        w = (png_width - x0 + dx - 1) // dx if png_width > x0 else 0
        h = (png_height - y0 + dy - 1) // dy if png_height > y0 else 0
        if w and h:
            out.append((x0, y0, dx, dy, w, h))
    return out


def _row_bytes(width: int, depth: int, colour: int) -> int:
    return (width * depth * CHANNELS[colour] + 7) // 8


def _data_bytes(width: int, height: int, depth: int, colour: int, interlaced: bool) -> int:
    return sum(h * (1 + _row_bytes(w, depth, colour)) for *_, w, h in _passes(width, height, interlaced))


def _text_size(kind: bytes, data: bytes) -> int:
    """The decompressed size of a text chunk, reading no more than MAX_TEXT_BYTES + 1 of it."""
    if kind == b"tEXt":
        return len(data)
    keyword_end = data.find(b"\0")
    if keyword_end < 0:
        return len(data)  # malformed: Pillow skips it
    if kind == b"zTXt":
        compressed = data[keyword_end + 2:]
    else:  # iTXt: keyword \0 flag method language \0 translated keyword \0 text
        if len(data) < keyword_end + 3:
            return len(data)
        flag = data[keyword_end + 1]
        rest = data[keyword_end + 3:]
        parts = rest.split(b"\0", 2)
        if len(parts) < 3:
            return len(data)
        if not flag:
            return len(parts[2])
        compressed = parts[2]
    try:
        return len(zlib.decompressobj().decompress(compressed, MAX_TEXT_BYTES + 1))
    except zlib.error:
        return 0  # not readable text: Pillow ignores it


def parse_png(data: bytes, want: tuple[int, int]) -> Png:
    """Check a PNG's structure (see the module doc); raise PngProblem saying what is wrong.

    want: the only (width, height) accepted, checked as soon as the IHDR is read.
    """
    if not data.startswith(SIGNATURE):
        raise PngProblem("damaged", "it does not start with the PNG signature")
    pos = len(SIGNATURE)
    header: tuple[int, ...] | None = None
    idat: list[bytes] = []
    trns: bytes | None = None
    text_total = 0
    ended = False
    while pos < len(data):
        if len(data) - pos < 12:
            raise PngProblem("damaged", f"it is truncated: {len(data) - pos} stray bytes after the last "
                             "whole chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        name = kind.decode("latin-1")
        if length > 0x7FFFFFFF or pos + 12 + length > len(data):
            raise PngProblem("damaged", f"it is truncated: chunk {name!r} claims {length} bytes, "
                             f"{max(0, len(data) - pos - 12)} follow")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PngProblem("damaged", f"chunk {name!r} does not match its CRC (the file is damaged)")
        pos += 12 + length
        if header is None:
            if kind != b"IHDR" or length != 13:
                raise PngProblem("damaged", "its first chunk is not a 13-byte IHDR")
            header = struct.unpack(">IIBBBBB", body)
            width, height, depth, colour, compression, filtering, interlace = header
            if (width, height) != want:
                raise PngProblem("size", f"{width}x{height} pixels", (width, height))
            if colour not in _DEPTHS or depth not in _DEPTHS[colour]:
                raise PngProblem("damaged", f"bit depth {depth} with colour type {colour} is not a PNG "
                                 "combination")
            if compression or filtering or interlace > 1:
                raise PngProblem("damaged", f"unknown compression {compression}, filter method "
                                 f"{filtering} or interlace method {interlace}")
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tRNS":
            trns = body
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            size = _text_size(kind, body)
            if size > MAX_TEXT_BYTES:
                raise PngProblem("text", f"it holds a {name} text chunk of more than "
                                 f"{MAX_TEXT_BYTES >> 20} MiB (once decompressed); a 28x28 image "
                                 "needs no such metadata")
            text_total += size
            if text_total > MAX_ALL_TEXT_BYTES:
                raise PngProblem("text", f"its text chunks hold more than {MAX_ALL_TEXT_BYTES >> 20} MiB "
                                 "in all; a 28x28 image needs no such metadata")
        elif kind == b"IEND":
            ended = True
            break
    if header is None:
        raise PngProblem("damaged", "it is truncated: it ends before its IHDR chunk")
    if not idat:
        raise PngProblem("damaged", "it holds no image data (IDAT)")
    if not ended:
        raise PngProblem("damaged", "it is truncated: it ends before its IEND chunk")
    width, height, depth, colour, _, _, interlace = header
    expected = _data_bytes(width, height, depth, colour, bool(interlace))
    stream = zlib.decompressobj()
    try:
        raw = stream.decompress(b"".join(idat), expected + 1)
    except zlib.error as err:
        raise PngProblem("damaged", f"its image data does not decompress ({err})") from err
    if len(raw) > expected:
        raise PngProblem("damaged", f"its image data holds more than the {expected} bytes "
                         f"{width}x{height} pixels need")
    if len(raw) < expected or not stream.eof:
        if interlace:
            told = f"{len(raw)} of the {expected} bytes"
        else:
            told = f"{len(raw) // (1 + _row_bytes(width, depth, colour))} of its {height} rows"
        raise PngProblem("damaged", f"its image data is truncated: it holds {told} (a reader would fill "
                         "the rest with black)")
    png = Png(width, height, depth, colour, bool(interlace), raw, trns)
    _check_filters(png)
    return png


def _check_filters(png: Png) -> None:
    pos = 0
    for *_, w, h in _passes(png.width, png.height, png.interlaced):
        step = 1 + _row_bytes(w, png.depth, png.colour)
        for _ in range(h):
            if png.raw[pos] > 4:
                raise PngProblem("damaged", f"a row of its image data has filter type {png.raw[pos]} "
                                 "(PNG has 0..4)")
            pos += step


def _unfilter(raw: bytes, pos: int, rows: int, row_bytes: int, bpp: int) -> list[bytearray]:
    out: list[bytearray] = []
    prev = bytearray(row_bytes)
    for _ in range(rows):
        kind = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + row_bytes])
        pos += 1 + row_bytes
        if kind == 1:
            for i in range(bpp, row_bytes):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            for i in range(row_bytes):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif kind == 3:
            for i in range(row_bytes):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(row_bytes):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        out.append(line)
        prev = line
    return out


def samples(png: Png) -> np.ndarray:
    """The 16-bit samples of a 16-bit PNG: uint16 (height, width, channels), as stored."""
    if png.depth != 16:
        raise ValueError("samples() reads 16-bit images (Pillow reads the others exactly)")
    channels = CHANNELS[png.colour]
    out = np.zeros((png.height, png.width, channels), dtype=np.uint16)
    pos = 0
    for x0, y0, dx, dy, w, h in _passes(png.width, png.height, png.interlaced):
        row_bytes = _row_bytes(w, 16, png.colour)
        rows = _unfilter(png.raw, pos, h, row_bytes, 2 * channels)
        pos += h * (1 + row_bytes)
        values = np.frombuffer(b"".join(rows), dtype=">u2").reshape(h, w, channels)
        out[y0::dy, x0::dx] = values
    return out
