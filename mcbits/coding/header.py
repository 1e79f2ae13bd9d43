"""Bitstream format version 3: one table of the header's fields, from which the file's bytes,
their reading and their validation all follow.

A file is: magic b"MCB", then the fields of FIELDS in order (the format version byte, a flags byte
holding the flag fields and the coder id, the precision bytes, varints, digests, each lane's drawn
count), then when flag bit 4 is set the extension block (a varint length, then one entry per
extension field present: a tag byte, a varint length and the value), the payload (the rANS message,
rans.Message.to_bytes, or when stored the images' pixels packed 8 a byte), and a 4-byte check: the
first 4 bytes of the SHA-256 of everything before it. Varints are unsigned LEB128 (7 bits a byte,
low first, at most 10 bytes). `fields_table()` renders the table (README, "The file format").

A 1-image, 1-lane file with default parameters has a 36-byte header and the 4-byte check.

Reading a file goes: magic, version, check (corruption), structure (every length inside the file),
then `validate`, which checks every field against the table before any decoding work. Each failure
is an McbitsError of its own kind: not a bitstream, an unsupported version, corruption (the check),
an invalid header (the check passed: the file was written so, or edited and resealed).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import struct
from typing import Any

import numpy as np

from mcbits.coding import limits, registry
from mcbits.coding.config import ARITHMETICS, MAX_LANES, MAX_PARTICLES, CoderConfig
from mcbits.coding.rans import LayoutError, MessageLayout
from mcbits.errors import McbitsError

MAGIC = b"MCB"
FORMAT_VERSION = 3
LEGACY_MAGIC = b"MCBITS"  # versions 1 and 2: b"MCBITS" + a 2-byte version, a JSON header
CHECK_BYTES = 4
DIGEST_BYTES = 8

CODER_IDS = registry.CODER_IDS  # the coder table holds each coder's id
CODER_BY_ID = {v: k for k, v in CODER_IDS.items()}

FLAG_FLOAT, FLAG_PORTABLE, FLAG_WHITEN, FLAG_STORED, FLAG_EXTENSIONS = 1, 2, 4, 8, 16
CODER_SHIFT = 5
EXT_ITERATIVE, EXT_ENCODER, EXT_NAMES, EXT_STEP_SLACK, EXT_PADDING = 1, 2, 3, 4, 5
MAX_COUNT = 1 << 62  # drawn and slack counts

_INVALID_REMEDY = ("the file passed its integrity check, so it was written this way (by a faulty "
                   "or foreign encoder, or edited and resealed): encode the images again with "
                   "mcbits encode")


# --- errors ----------------------------------------------------------------------------------

def not_a_bitstream(where: str, detail: str) -> McbitsError:
    return McbitsError(f"not an mcbits bitstream ({detail})", where=where,
                       remedy="pass a file written by mcbits encode")


def unsupported_version(where: str, version: int, *, legacy: bool = False) -> McbitsError:
    """A file of a format version this mcbits does not read. legacy: the file starts with the
    early b"MCBITS" magic (versions 1 and 2, a JSON header), whatever version it then names."""
    remedy = "decode it with the mcbits version that wrote it, or encode the images again"
    if legacy and version not in (1, 2):
        return McbitsError(
            f"unsupported bitstream format: the file starts with the early \"MCBITS\" magic of "
            f"format versions 1 and 2 but names version {version}, which no mcbits wrote in that "
            f"layout; this mcbits reads format version {FORMAT_VERSION} (magic \"MCB\")",
            where=where, remedy=remedy)
    older = " (an early, JSON-header format)" if legacy or version in (1, 2) else ""
    return McbitsError(
        f"unsupported bitstream format version {version}{older}: this mcbits reads version "
        f"{FORMAT_VERSION} only",
        where=where,
        remedy=remedy,
    )


def corrupt(where: str, detail: str) -> McbitsError:
    return McbitsError(
        f"the file is corrupt: {detail} (the file was damaged or truncated after it was written)",
        where=where,
        remedy="use an intact copy of the file, or encode the images again",
    )


class InvalidHeader(McbitsError):
    """A header (or payload) that breaks the field table; `detail` says which field and why."""

    def __init__(self, detail: str, where: str):
        self.detail = detail
        super().__init__(f"invalid bitstream header: {detail}", where=where, remedy=_INVALID_REMEDY)


def invalid(where: str, detail: str) -> InvalidHeader:
    return InvalidHeader(detail, where)


# --- varints and a bounds-checked reader -------------------------------------------------------

def put_varint(out: bytearray, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"a varint holds a non-negative integer, not {value!r}")
    value = int(value)
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return


class _Reader:
    def __init__(self, data: bytes, pos: int, where: str, what: str = "header"):
        self.data, self.pos, self.where, self.what = data, pos, where, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise invalid(self.where, f"the {self.what} ends early (at byte {len(self.data)}, "
                                      f"{n} more needed at byte {self.pos})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk if isinstance(chunk, bytes) else chunk.tobytes() if n <= 4096 else chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self, field: str) -> int:
        value = shift = 0
        for _ in range(10):
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
        raise invalid(self.where, f"{field} is a varint longer than 10 bytes")

    def bounded(self, field: str, low: int, high: int, label: str | None = None) -> int:
        value = self.varint(field)
        if not low <= value <= high:
            raise invalid(self.where, f"{label or field}={value} is outside {low}..{high}")
        return value

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _counts(value: Any, lanes: int) -> bool:
    """One count in 0..2^62 per lane."""
    return (isinstance(value, list) and len(value) == lanes
            and all(_is_int(v) and 0 <= v < MAX_COUNT for v in value))


# --- encodings: how one field is written, read and checked ---------------------------------------

class Codec:
    """How a field is written. A flag codec (`in_flags`) lives in the flags byte; an extension
    codec (`tag`) is an entry of the extension block, present only when `present(value)`; the others
    are written in table order. `check` returns the problem with a value (None: none)."""

    encoding = ""
    in_flags = False
    tag = 0
    min_bytes = 0

    def max_bytes(self, lanes: int) -> int:
        return self.min_bytes

    def put(self, out: bytearray, value: Any, header: dict[str, Any]) -> None:
        raise NotImplementedError

    def get(self, r: _Reader, header: dict[str, Any], field: Field) -> Any:
        raise NotImplementedError

    def check(self, value: Any, field: Field, header: dict[str, Any]) -> str | None:
        return None


class _Version(Codec):
    encoding, min_bytes = "byte", 1

    def put(self, out, value, header):
        out.append(FORMAT_VERSION)

    def get(self, r, header, field):
        return r.byte()

    def check(self, value, field, header):
        return None if value == FORMAT_VERSION and _is_int(value) else f"format_version={value!r}"


@dataclasses.dataclass(frozen=True)
class _Flag(Codec):
    bit: int
    on: Any = True
    off: Any = False
    in_flags = True

    @property
    def encoding(self) -> str:
        return f"flags bit {self.bit.bit_length() - 1}"

    def bits(self, value: Any) -> int:
        return self.bit if (value == self.on if isinstance(self.on, str) else bool(value)) else 0

    def value(self, flags: int) -> Any:
        return self.on if flags & self.bit else self.off

    def check(self, value, field, header):
        if isinstance(self.on, str):
            ok = value in (self.on, self.off)
            return None if ok else f"{field.name}={value!r} is not {self.on} or {self.off}"
        return None if isinstance(value, bool) else f"{field.name}={value!r} must be true or false"


class _CoderId(Codec):
    encoding, in_flags = f"flags bits {CODER_SHIFT}-7", True

    def bits(self, name: Any) -> int:
        coder_id = name if isinstance(name, int) else CODER_IDS.get(name)
        if coder_id is None or not 0 <= coder_id < 8:
            raise ValueError(f"no coder id for {name!r}")
        return coder_id << CODER_SHIFT

    def value(self, flags: int, where: str) -> str:
        coder_id = flags >> CODER_SHIFT
        if coder_id not in CODER_BY_ID:
            raise invalid(where, f"coder id {coder_id} is not one of {sorted(CODER_BY_ID)}")
        return CODER_BY_ID[coder_id]


class _Byte(Codec):
    encoding, min_bytes = "byte", 1

    def put(self, out, value, header):
        if not isinstance(value, (int, np.integer)) or not 0 <= value <= 255:
            raise ValueError(f"{value!r} does not fit a byte")
        out.append(int(value))

    def get(self, r, header, field):
        return r.byte()


class _Varint(Codec):
    encoding, min_bytes = "varint", 1

    def max_bytes(self, lanes):
        return 10

    def put(self, out, value, header):
        put_varint(out, value)

    def get(self, r, header, field):
        if field.bounds is None:
            return r.varint(field.name)
        return r.bounded(field.name, *field.bounds)

    def check(self, value, field, header):
        low, high = field.bounds or (0, MAX_COUNT)
        if not _is_int(value) or not low <= value <= high:
            return f"{field.name}={value!r} must be an integer in {low}..{high}"
        return None


class _Shape(Codec):
    encoding, min_bytes = "varint count, then a varint per dimension", 2

    def max_bytes(self, lanes):
        return 10 * (1 + limits.MAX_DIMS)

    def put(self, out, value, header):
        shape = list(value)
        put_varint(out, len(shape))
        for dim in shape:
            put_varint(out, dim)

    def get(self, r, header, field):
        ndim = r.bounded("ndim", 1, limits.MAX_DIMS, "the image shape's dimension count")
        return [r.bounded("image_shape", 1, limits.MAX_PIXELS, "an image dimension") for _ in range(ndim)]

    def check(self, value, field, header):
        if (not isinstance(value, list) or not 1 <= len(value) <= limits.MAX_DIMS
                or not all(_is_int(d) and d >= 1 for d in value) or math.prod(value) > limits.MAX_PIXELS):
            return (f"image_shape={value!r} must be 1..{limits.MAX_DIMS} positive integers with at "
                    f"most {limits.MAX_PIXELS} pixels in all")
        return None


class _Digest(Codec):
    encoding, min_bytes = f"{DIGEST_BYTES} bytes", DIGEST_BYTES

    def put(self, out, value, header):
        out += bytes.fromhex(str(value)[:2 * DIGEST_BYTES])

    def get(self, r, header, field):
        return r.take(DIGEST_BYTES).hex()

    def check(self, value, field, header):
        if (isinstance(value, str) and len(value) == 2 * DIGEST_BYTES
                and all(c in "0123456789abcdef" for c in value)):
            return None
        return f"{field.name}={value!r} must be 16 lower-case hex digits"


class _PerLane(Codec):
    encoding = "a varint per lane (rANS files only)"

    def max_bytes(self, lanes):
        return 10 * lanes

    def put(self, out, value, header):
        if not header.get("stored"):
            for count in value:
                put_varint(out, count)

    def get(self, r, header, field):
        return [] if header["stored"] else [r.varint(field.name) for _ in range(header["coder"]["lanes"])]

    def check(self, value, field, header):
        if header["stored"]:
            return None if value == [] else "a stored file has no drawn counts, step slack or padding"
        lanes = header["coder"]["lanes"]
        if not isinstance(value, list) or len(value) != lanes:
            return f"drawn must hold one count per lane ({lanes}), got {value!r}"
        if not _counts(value, lanes):
            return f"drawn counts must be integers in 0..2^62, got {value!r}"
        return None


class _Extension(Codec):
    """An entry of the extension block; absent when `present(value)` is false (then the header
    holds `absent`, or no key at all for an optional field)."""

    absent: Any = None

    @property
    def encoding(self) -> str:
        return f"extension {self.tag}: {self.value_encoding}"

    value_encoding = ""

    def present(self, value: Any) -> bool:
        return value is not None

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, v: _Reader, value: bytes, header: dict[str, Any]) -> Any:
        raise NotImplementedError


class _Iterative(_Extension):
    tag, absent = EXT_ITERATIVE, {}
    value_encoding = "varint steps, float64 LE lr, varint num_particles, varint seed"

    def present(self, value):
        return bool((value or {}).get("iterative"))

    def encode(self, value):
        it = value["iterative"]
        out = bytearray()
        put_varint(out, it["steps"])
        out += struct.pack("<d", float(it["lr"]))
        put_varint(out, it["num_particles"])
        put_varint(out, it["seed"])
        return bytes(out)

    def decode(self, v, value, header):
        steps = v.varint("iterative steps")
        (lr,) = struct.unpack("<d", v.take(8))
        return {"iterative": {"steps": steps, "lr": lr, "num_particles": v.varint("iterative num_particles"),
                              "seed": v.varint("iterative seed")}}

    def check(self, value, field, header):
        if not isinstance(value, dict) or set(value) - {"iterative"}:
            return f"posterior={value!r} must be {{}} or {{'iterative': ...}}"
        problem = limits.iterative_problem(value["iterative"]) if "iterative" in value else None
        return f"posterior: {problem}" if problem else None


class _Encoder(_Extension):
    tag, value_encoding = EXT_ENCODER, "UTF-8 JSON object of strings"

    def encode(self, value):
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def decode(self, v, value, header):
        if len(value) > limits.MAX_ENCODER_BYTES:
            raise invalid(v.where, f"the encoder record has {len(value)} bytes, above "
                                   f"{limits.MAX_ENCODER_BYTES}")
        v.pos = len(value)
        try:
            return json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise invalid(v.where, f"the encoder record is not UTF-8 JSON ({err})") from err

    def check(self, value, field, header):
        if header["portable"]:
            return "a portable file carries no encoder environment"
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                                  for k, x in value.items()):
            return "the encoder environment must be a table of strings"
        return None


class _Names(_Extension):
    tag, value_encoding = EXT_NAMES, "varint count, then each name as varint length + UTF-8"

    def encode(self, value):
        out = bytearray()
        put_varint(out, len(value))
        for name in value:
            raw = str(name).encode("utf-8")
            put_varint(out, len(raw))
            out += raw
        return bytes(out)

    def decode(self, v, value, header):
        names = []
        for _ in range(v.bounded("name count", 0, limits.MAX_IMAGES, "the name count")):
            raw = v.take(v.bounded("name length", 0, limits.MAX_NAME_BYTES, "a name's length"))
            try:
                names.append(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                raise invalid(v.where, f"a file name is not UTF-8 ({err})") from err
        return names

    def check(self, value, field, header):
        num = header["num_images"]
        if not isinstance(value, list) or len(value) != num:
            return f"names must list one file name per image ({num})"
        for name in value:
            if not isinstance(name, str) or not name or name in (".", ".."):
                return f"file name {name!r} is empty or not a name"
            try:
                size = len(name.encode("utf-8"))
            except UnicodeEncodeError as err:
                return f"file name {name!r} is not valid Unicode ({err})"
            if size > limits.MAX_NAME_BYTES:
                return f"file name {name[:40]!r}... is longer than {limits.MAX_NAME_BYTES} bytes"
            if any(c in name for c in "/\\\0"):
                return f"file name {name!r} holds '/', '\\\\' or NUL: names are plain file names"
        return None


class _StepSlack(_Extension):
    tag, value_encoding = EXT_STEP_SLACK, "per lane, varint drawn words and varint tail words"

    def present(self, value):
        return bool(value)

    def encode(self, value):
        out = bytearray()
        for d, w in zip(value["drawn"], value["words"], strict=True):
            put_varint(out, d)
            put_varint(out, w)
        return bytes(out)

    def decode(self, v, value, header):
        pairs = [(v.varint("step slack"), v.varint("step slack")) for _ in range(header["coder"]["lanes"])]
        return {"drawn": [p[0] for p in pairs], "words": [p[1] for p in pairs]}

    def check(self, value, field, header):
        if header["stored"]:
            return "a stored file has no drawn counts, step slack or padding"
        lanes = header["coder"]["lanes"]
        if not isinstance(value, dict) or set(value) != {"drawn", "words"} or not all(
                _counts(value[k], lanes) for k in ("drawn", "words")):
            return f"step_slack must hold two counts >= 0 per lane, got {value!r}"
        return None


class _Padding(_Extension):
    tag, absent, value_encoding = EXT_PADDING, 0, "zero bytes"

    def present(self, value):
        return bool(value)

    def encode(self, value):
        if not 0 < int(value) <= limits.MAX_FILE_BYTES:
            raise ValueError(f"padding={value} is beyond any file")
        return bytes(int(value))

    def decode(self, v, value, header):
        if np.frombuffer(value, dtype=np.uint8).any():
            raise invalid(v.where, "the padding holds non-zero bytes")
        v.pos = len(value)
        return len(value)

    def check(self, value, field, header):
        if not _is_int(value) or value < 0:
            return f"padding={value!r} must be an integer >= 0"
        if header["stored"] and value:
            return "a stored file has no drawn counts, step slack or padding"
        return None


# --- the field table ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Field:
    """One header field. key: its place in the header dict ("coder.lprec": header["coder"]["lprec"],
    the coder's parameters, checked together by CoderConfig.validated()); bounds: the range of an
    integer, checked when the file is read; rule: what else `validate` requires; optional: the dict
    may lack it (an extension that is absent)."""

    key: str
    codec: Codec
    doc: str
    bounds: tuple[int, int] | None = None
    rule: str = ""
    optional: bool = False

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    @property
    def top(self) -> str:
        return self.key.split(".", 1)[0]


_BYTE, _VARINT, _DIGEST = _Byte(), _Varint(), _Digest()
_CONFIG = "CoderConfig.validated()"
FIELDS: tuple[Field, ...] = (
    Field("format_version", _Version(), "format version", (FORMAT_VERSION, FORMAT_VERSION)),
    Field("coder.arithmetic", _Flag(FLAG_FLOAT, "float", "exact"), "float arithmetic (0: exact)",
          rule=" or ".join(ARITHMETICS)),
    Field("portable", _Flag(FLAG_PORTABLE), "decodes identically anywhere",
          rule="true only when stored or in exact arithmetic"),
    Field("coder.whiten_prior", _Flag(FLAG_WHITEN), "prior whitening"),
    Field("stored", _Flag(FLAG_STORED), "the payload is the packed pixels", rule="stored files are portable"),
    Field("coder.coder", _CoderId(), "the coder: " + ", ".join(f"{i} {n}" for n, i in CODER_IDS.items())),
    Field("coder.lprec", _BYTE, "rANS head precision", rule="1..64 - bprec"),
    Field("coder.bprec", _BYTE, "rANS word bits", rule="8, 16 or 32"),
    Field("coder.log_num_bucket", _BYTE, "log2 of the latent buckets K", rule="1..16"),
    Field("coder.prior_mprec", _BYTE, "prior precision", rule="log_num_bucket..lprec"),
    Field("coder.prop_mprec", _BYTE, "posterior precision", rule="log_num_bucket + 1..lprec"),
    Field("coder.cond_mprec", _BYTE, "pixel precision", rule="1..lprec"),
    Field("coder.mprec", _BYTE, "particle-index precision", rule="ceil(log2 N)..lprec"),
    Field("coder.num_particles", _VARINT, "particles N", rule=f"1..{MAX_PARTICLES}; 1 for Stochastic "
          "and BB-ELBO"),
    Field("coder.seed", _VARINT, "seed of every seeded value", rule="0..2^63 - 1"),
    Field("coder.lanes", _VARINT, "rANS lanes L", (1, MAX_LANES)),
    Field("num_images", _VARINT, "images in the file", (1, limits.MAX_IMAGES),
          rule="rANS files: at most one image per byte of message and padding"),
    Field("image_shape", _Shape(), "shape of one image",
          rule=f"1..{limits.MAX_DIMS} dimensions >= 1, 1..{limits.MAX_PIXELS} pixels (the model's)"),
    Field("model_sha256", _DIGEST, "first bytes of the checkpoint's SHA-256", rule="16 hex digits"),
    Field("images_sha256", _DIGEST, "first bytes of the SHA-256 of the packed images and their shape "
          "(bitstream.images_digest)", rule="16 hex digits"),
    Field("drawn", _PerLane(), "each lane's drawn-word count",
          rule="0 for lanes without images, at most what the lane's images can draw; stored: []"),
    Field("posterior", _Iterative(), "iterative inference ({} when absent)",
          rule=f"steps 0..{limits.MAX_ITERATIVE_STEPS}, 0 < lr <= 1, num_particles 1..{MAX_PARTICLES}, "
          f"seed 0..2^63 - 1, steps x num_particles <= {limits.MAX_ITERATIVE_WORK}"),
    Field("encoder", _Encoder(), "the encoder's environment", rule="non-portable files only, at most "
          f"{limits.MAX_ENCODER_BYTES} bytes", optional=True),
    Field("names", _Names(), "original file names", rule=f"one per image, 1..{limits.MAX_NAME_BYTES} "
          "UTF-8 bytes, no '/', '\\\\' or NUL, not '.' or '..'", optional=True),
    Field("step_slack", _StepSlack(), "by how much the largest count at any step boundary of the "
          "encode exceeds the final one", rule="rANS only; 0 for lanes without images", optional=True),
    Field("padding", _Padding(), "zero bytes, so that a file holds a byte per image (0 when absent)",
          rule="rANS: max(0, num_images - message bytes); stored: 0"),
)
EXTENSIONS = {f.codec.tag: f.key for f in FIELDS if isinstance(f.codec, _Extension)}
_FIRST_EXTENSION = next(f for f in FIELDS if isinstance(f.codec, _Extension))
_TOP_KEYS = tuple(dict.fromkeys(f.top for f in FIELDS))
_REQUIRED = tuple(k for k in _TOP_KEYS if not all(f.optional for f in FIELDS if f.top == k))
_CODER_KEYS = tuple(f.name for f in FIELDS if f.top == "coder")


def new_header(config: CoderConfig, **fields: Any) -> dict[str, Any]:
    """A header dict of `config` and `fields`; the others as a file without them reads (a rANS
    file of no draws, no extensions)."""
    header: dict[str, Any] = {"format_version": FORMAT_VERSION, "coder": config.to_dict(), "stored": False,
                              "drawn": [0] * config.lanes}
    header.update({f.key: copy.copy(f.codec.absent) for f in FIELDS
                   if isinstance(f.codec, _Extension) and not f.optional})
    header.update(fields)
    return header


def _value(header: dict[str, Any], field: Field) -> Any:
    if field.top == "coder":
        return header["coder"][field.name]
    return header.get(field.key)


def fields_table() -> str:
    """The Markdown table of FIELDS, in file order (README, "The file format")."""
    rows = ["| field | bytes | range | meaning |", "|---|---|---|---|", "| magic | 3 bytes | `MCB` | |"]
    for f in FIELDS:
        if f is _FIRST_EXTENSION:
            rows.append("| extensions | flags bit 4; a varint length, then per entry a tag byte, a varint "
                        "length and the value | | present when any extension is |")
        low, high = f.bounds or (None, None)
        bounds = "" if low is None else str(low) if low == high else f"{low}..{high}"
        rule = "; ".join(x for x in (bounds, f.rule) if x)
        if f.top == "coder":
            rule = "; ".join(x for x in (rule, _CONFIG) if x)
        rows.append(f"| `{f.key}` | {f.codec.encoding} | {rule.replace('|', '/')} | {f.doc} |")
    rows += ["| payload | rest | | the rANS message, or the packed pixels when stored |",
             f"| check | {CHECK_BYTES} bytes | | first bytes of the SHA-256 of everything before it |"]
    return "\n".join(rows) + "\n"


# --- writing -----------------------------------------------------------------------------------

def _entry(tag: int, value: bytes) -> bytes:
    out = bytearray([tag])
    put_varint(out, len(value))
    return bytes(out) + value


def pack(header: dict[str, Any], payload: bytes) -> bytes:
    """Serialize a header dict (as `parse` returns) and the payload, and seal it with the check.

    Writes the values as given, within what the layout can hold (so a test can write a header that
    `validate` refuses); raises ValueError for a value the layout cannot hold.
    """
    ext = b"".join(_entry(f.codec.tag, f.codec.encode(_value(header, f))) for f in FIELDS
                   if isinstance(f.codec, _Extension) and f.codec.present(_value(header, f)))
    flags = FLAG_EXTENSIONS if ext else 0
    for f in FIELDS:
        if f.codec.in_flags:
            flags |= f.codec.bits(_value(header, f))
    out = bytearray(MAGIC)
    for f in FIELDS:
        if f.codec.in_flags:
            if flags is not None:  # the flags byte sits where its first field is listed
                out.append(flags)
                flags = None
        elif not isinstance(f.codec, _Extension):
            try:
                f.codec.put(out, _value(header, f), header)
            except ValueError as err:
                raise ValueError(f"{f.key}: {err}") from err
    if ext:
        put_varint(out, len(ext))
        out += ext
    out += payload
    return bytes(out) + hashlib.sha256(out).digest()[:CHECK_BYTES]


# --- reading -----------------------------------------------------------------------------------

MIN_FILE_BYTES = len(MAGIC) + 1 + sum(f.codec.min_bytes for f in FIELDS) + CHECK_BYTES


def fixed_header_bytes(lanes: int = MAX_LANES) -> int:
    """The most bytes a header's fields take before its extension block (varints of 10 bytes)."""
    return len(MAGIC) + 1 + sum(f.codec.max_bytes(lanes) for f in FIELDS) + 10


def check_front(data: bytes, where: str) -> None:
    """The first bytes of a file (at least its first 8 when it has them): magic and version."""
    if data.startswith(LEGACY_MAGIC) and len(data) >= 8:
        raise unsupported_version(where, int.from_bytes(data[6:8], "little"), legacy=True)
    if len(data) < 4 or data[:3] != MAGIC:
        raise not_a_bitstream(where, "no MCB magic" if len(data) >= 4 else f"only {len(data)} bytes")
    if data[3] != FORMAT_VERSION:
        raise unsupported_version(where, data[3])


def parse(data: bytes, where: str = "bitstream") -> tuple[dict[str, Any], bytes]:
    """Split a file into (header dict, payload): magic, version, check, structure, then `validate`."""
    return parse_full(data, where)[:2]


def parse_full(data: bytes, where: str = "bitstream") -> tuple[dict[str, Any], bytes, CoderConfig,
                                                                 np.ndarray | None]:
    """`parse`, and what validation found: the coder config and each lane's tail words (rANS)."""
    check_front(data, where)
    if len(data) < MIN_FILE_BYTES:
        raise corrupt(where, f"only {len(data)} bytes, shorter than any header")
    body, check = memoryview(data)[:-CHECK_BYTES], bytes(data[-CHECK_BYTES:])  # no copies
    if hashlib.sha256(body).digest()[:CHECK_BYTES] != check:
        raise corrupt(where, "its integrity check does not match its contents")
    r = _Reader(body, len(MAGIC), where)
    header = parse_fields(r, where)
    payload = bytes(body[r.pos:])
    config = validate_fields(header, where)
    return header, payload, config, validate_payload(header, config, payload, where)


def parse_fields(r: _Reader, where: str) -> dict[str, Any]:
    """The header dict of the fields and extensions at r (at the version byte, after the magic);
    r ends at the payload. Structure only: `validate` checks the fields."""
    header: dict[str, Any] = {"coder": {}}
    flags = None
    for f in FIELDS:
        if f.codec.in_flags:
            flags = r.byte() if flags is None else flags
            value = f.codec.value(flags, where) if isinstance(f.codec, _CoderId) else f.codec.value(flags)
        elif isinstance(f.codec, _Extension):
            if not f.optional:
                header[f.key] = copy.copy(f.codec.absent)
            continue
        else:
            value = f.codec.get(r, header, f)
        if f.top == "coder":
            header["coder"][f.name] = value
        else:
            header[f.key] = value
    header["coder"] = {k: header["coder"][k] for k in CoderConfig().to_dict()}
    if flags & FLAG_EXTENSIONS:
        length = r.varint("extension length")
        _parse_extensions(r.take(length), header, where)
        if length == 0:
            raise invalid(where, "the extensions flag is set but the block is empty")
    return header


def _parse_extensions(block: bytes, header: dict[str, Any], where: str) -> None:
    by_tag = {f.codec.tag: f for f in FIELDS if isinstance(f.codec, _Extension)}
    r = _Reader(block, 0, where, "extension block")
    seen: set[int] = set()
    while not r.done():
        tag = r.byte()
        value = r.take(r.varint("extension length"))
        if tag in seen:
            raise invalid(where, f"extension {tag} appears twice")
        seen.add(tag)
        if tag not in by_tag:
            raise invalid(where, f"unknown extension {tag} (known: {sorted(by_tag)}); a newer "
                                 "mcbits may have written it")
        v = _Reader(value, 0, where, f"extension {tag}")
        header[by_tag[tag].key] = by_tag[tag].codec.decode(v, value, header)
        if not v.done():
            raise invalid(where, f"extension {tag} has {len(value) - v.pos} bytes left over")


# --- the message's lane table (its layout is rans.MessageLayout's) -------------------------------

def message_lane_words(payload: bytes, lanes: int, lprec: int, bprec: int, where: str) -> np.ndarray:
    """Each lane's tail length in words, from a message's bytes, with its heads checked in range."""
    try:
        return MessageLayout(lanes, lprec, bprec).lane_words(payload)
    except LayoutError as err:
        raise invalid(where, str(err)) from None


# --- validation --------------------------------------------------------------------------------

def raw_bytes(num_images: int, num_pixels: int) -> int:
    """Bytes of the packed pixels: the stored payload."""
    return -(-num_images * num_pixels // 8)


def _coder_config(coder: Any, where: str) -> CoderConfig:
    if not isinstance(coder, dict):
        raise invalid(where, f"coder is a {type(coder).__name__}, not a table of parameters")
    if set(coder) != set(_CODER_KEYS):
        raise invalid(where, f"coder parameters: missing {sorted(set(_CODER_KEYS) - set(coder))}, "
                             f"unknown {sorted(map(str, set(coder) - set(_CODER_KEYS)))}")
    try:
        return CoderConfig.from_dict(coder)
    except McbitsError as err:
        raise invalid(where, f"coder parameters: {err.what}") from err
    except TypeError as err:
        raise invalid(where, f"coder parameters: {err}") from err


def validate_fields(header: Any, where: str = "bitstream") -> CoderConfig:
    """Check every field of a header dict against FIELDS and the rules between fields that need no
    payload; return the coder config. Raises InvalidHeader naming the first bad field."""
    if not isinstance(header, dict):
        raise invalid(where, f"the header is a {type(header).__name__}, not a table")
    missing = [key for key in _REQUIRED if key not in header]
    if missing:
        raise invalid(where, f"fields {', '.join(missing)} are missing")
    unknown = sorted(set(header) - set(_TOP_KEYS))
    if unknown:
        raise invalid(where, f"unknown fields {', '.join(map(str, unknown))}")
    config = _coder_config(header["coder"], where)
    # the flags first: the other fields' checks read portable and stored
    for f in sorted((f for f in FIELDS if f.top != "coder" and f.key in header),
                    key=lambda f: not f.codec.in_flags):
        problem = f.codec.check(header[f.key], f, header)
        if problem:
            raise invalid(where, problem)
    if header["portable"] and not (header["stored"] or config.arithmetic == "exact"):
        raise invalid(where, "the file says it is portable, but it is coded in float arithmetic")
    if header["stored"] and not header["portable"]:
        raise invalid(where, "a stored file is portable, but the flag says otherwise")
    num, pixels = header["num_images"], math.prod(header["image_shape"])
    if 2 * num * pixels > limits.MEMORY_LIMIT:
        raise invalid(where, f"{num} images of {pixels} pixels need more than the memory limit of "
                             f"{limits.MEMORY_LIMIT / 2**30:.0f} GiB")
    return config


def validate_payload(header: dict[str, Any], config: CoderConfig, payload: bytes,
                     where: str = "bitstream") -> np.ndarray | None:
    """Check the payload against a header that passed `validate_fields`: the stored pixels' size,
    or the message's layout, padding and idle lanes. Returns each lane's tail words (rANS) or None."""
    num, pixels = header["num_images"], math.prod(header["image_shape"])
    if header["stored"]:
        want = raw_bytes(num, pixels)
        if len(payload) != want:
            raise invalid(where, f"the stored payload has {len(payload)} bytes; {num} images of "
                                 f"{pixels} pixels pack into {want}")
        spare = 8 * want - num * pixels
        if spare and payload[-1] & ((1 << spare) - 1):
            raise invalid(where, "the stored payload's unused last bits are not zero")
        return None
    words = message_lane_words(payload, config.lanes, config.lprec, config.bprec, where)
    if header["padding"] != max(0, num - len(payload)):
        raise invalid(where, f"{num} images in a message of {len(payload)} bytes with "
                             f"{header['padding']} bytes of padding: a file holds at least one byte of "
                             "message or padding per image, and no more padding than that")
    slack = header.get("step_slack")
    for lane in range(num, config.lanes):  # lanes that code no image stay initial
        if header["drawn"][lane] or words[lane] or (slack and (slack["drawn"][lane] or slack["words"][lane])):
            raise invalid(where, f"lane {lane} codes no image but has words or draws")
    return words


def validate(header: Any, payload: bytes, where: str = "bitstream") -> CoderConfig:
    """Check every field of a header dict against FIELDS and the payload against the header; return
    the coder config. Raises McbitsError (an invalid header) naming the first bad field."""
    config = validate_fields(header, where)
    validate_payload(header, config, payload, where)
    return config
