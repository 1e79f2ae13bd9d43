"""Bitstream format version 3: a compact binary header, its schema and its validation.

Byte layout (varint: unsigned LEB128, 7 bits a byte, low first, at most 10 bytes):

    offset  bytes  field
    0       3      magic b"MCB"
    3       1      format version: 3
    4       1      flags: bit 0 float arithmetic (0: exact), bit 1 portable, bit 2 whiten_prior,
                   bit 3 stored, bit 4 extensions present; bits 5-7 the coder id
                   (0 StochasticCoder, 1 BitsBackCoder, 2 ISBitsBackCoder, 3 CISBitsBackCoder)
    5       7      precisions, a byte each: lprec, bprec, log_num_bucket, prior_mprec, prop_mprec,
                   cond_mprec, mprec
    12      var    varints: num_particles, seed, lanes, num_images, ndim, then ndim image dims
            8      model digest: the first 8 bytes of the checkpoint's SHA-256
            8      images digest: the first 8 bytes of the SHA-256 of the packed images and their
                   shape (bitstream.images_digest)
            var    rANS files only: each lane's drawn-word count (a varint per lane)
            var    when flag bit 4: the extension block, a varint length L and L bytes of entries,
                   each a tag byte, a varint length and the value (EXTENSIONS below)
            rest   payload: the rANS message (rans.Message.to_bytes), or when stored the images'
                   pixels packed 8 a byte (np.packbits of the flat (n * P) bits)
    end-4   4      check: the first 4 bytes of the SHA-256 of everything before it

A 1-image, 1-lane file with default parameters has a 36-byte header and the 4-byte check.

Reading a file goes: magic, version, check (corruption), structure (every length inside the file),
then `validate`, which applies SCHEMA to every field before any decoding work. Each failure is an
McbitsError of its own kind: not a bitstream, an unsupported version, corruption (the check),
an invalid header (the check passed: the file was written so, or edited and resealed).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from typing import Any

import numpy as np

from mcbits.coding import limits
from mcbits.coding.config import MAX_LANES, MAX_PARTICLES, CoderConfig
from mcbits.errors import McbitsError

MAGIC = b"MCB"
FORMAT_VERSION = 3
LEGACY_MAGIC = b"MCBITS"  # versions 1 and 2: b"MCBITS" + a 2-byte version, a JSON header
CHECK_BYTES = 4
DIGEST_BYTES = 8

CODER_IDS = {"StochasticCoder": 0, "BitsBackCoder": 1, "ISBitsBackCoder": 2, "CISBitsBackCoder": 3}
CODER_BY_ID = {v: k for k, v in CODER_IDS.items()}
PRECISIONS = ("lprec", "bprec", "log_num_bucket", "prior_mprec", "prop_mprec", "cond_mprec", "mprec")

FLAG_FLOAT, FLAG_PORTABLE, FLAG_WHITEN, FLAG_STORED, FLAG_EXTENSIONS = 1, 2, 4, 8, 16
CODER_SHIFT = 5

EXT_ITERATIVE, EXT_ENCODER, EXT_NAMES, EXT_STEP_SLACK, EXT_PADDING = 1, 2, 3, 4, 5
EXTENSIONS = {
    EXT_ITERATIVE: "iterative inference: varint steps, float64 LE lr, varint num_particles, varint seed",
    EXT_ENCODER: "the encoder's environment (non-portable files only): UTF-8 JSON object of strings",
    EXT_NAMES: "original file names: varint count (= num_images), then each as varint length + UTF-8",
    EXT_STEP_SLACK: "rANS only, per lane: varint drawn words and varint tail words by which the "
    "largest count at any step boundary of the encode exceeds the final one",
    EXT_PADDING: "zero bytes, present only when the message has fewer bytes than images",
}

# Every field of the header dict (what read_header returns), with its type and range: the rules
# `validate` enforces, in this order, before any decoding work.
SCHEMA: dict[str, str] = {
    "format_version": f"int, {FORMAT_VERSION}",
    "coder": "table as CoderConfig.to_dict(), accepted by CoderConfig.validated(): coder one of "
    f"{', '.join(CODER_IDS)}; 1 <= num_particles <= {MAX_PARTICLES}; 1 <= lanes <= {MAX_LANES}; "
    "0 <= seed < 2^63; bprec 8, 16 or 32, 1 <= lprec <= 64 - bprec, the *_mprec within lprec",
    "portable": "bool; true only when stored or in exact arithmetic",
    "stored": "bool; true: the payload is the packed pixels; stored files are portable",
    "posterior": f"{{}} or {{'iterative': {{steps 0..{limits.MAX_ITERATIVE_STEPS}, 0 < lr <= 1, "
    f"num_particles 1..{MAX_PARTICLES}, seed 0..2^63-1}}}}, steps x num_particles <= "
    f"{limits.MAX_ITERATIVE_WORK}",
    "model_sha256": "str, 16 lower-case hex digits (the checkpoint's SHA-256 prefix)",
    "num_images": f"int, 1..{limits.MAX_IMAGES}; rANS files: at most one image per byte of message "
    "and padding",
    "image_shape": f"list of 1..{limits.MAX_DIMS} ints >= 1 whose product is 1..{limits.MAX_PIXELS} "
    "(and the model's pixels)",
    "images_sha256": "str, 16 lower-case hex digits",
    "drawn": "rANS: one int >= 0 per lane, 0 for lanes without images, at most what the lane's "
    "images can draw (limits.max_drawn_words); stored: []",
    "step_slack": "optional (rANS only): {'drawn': [int >= 0] * lanes, 'words': [int >= 0] * lanes}, "
    "0 for lanes without images",
    "names": f"optional: num_images file names, each 1..{limits.MAX_NAME_BYTES} UTF-8 bytes, no '/', "
    "'\\\\' or NUL, not '.' or '..'",
    "encoder": f"optional, non-portable files only: table of str to str, at most "
    f"{limits.MAX_ENCODER_BYTES} bytes as JSON",
    "padding": "int >= 0: rANS files max(0, num_images - message bytes); stored files 0",
}

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
    """A header (or payload) that breaks the schema; `detail` says which field and why."""

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

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _bounded(value: int, low: int, high: int, field: str, where: str) -> int:
    if not low <= value <= high:
        raise invalid(where, f"{field}={value} is outside {low}..{high}")
    return value


# --- writing -----------------------------------------------------------------------------------

def pack(header: dict[str, Any], payload: bytes) -> bytes:
    """Serialize a header dict (as `parse` returns) and the payload, and seal it with the check.

    Writes the values as given, within what the layout can hold (so a test can write a header that
    `validate` refuses); raises ValueError for a value the layout cannot hold.
    """
    coder = header["coder"]
    name = coder["coder"]
    coder_id = name if isinstance(name, int) else CODER_IDS.get(name)
    if coder_id is None or not 0 <= coder_id < 8:
        raise ValueError(f"no coder id for {name!r}")
    flags = coder_id << CODER_SHIFT
    flags |= FLAG_FLOAT if coder["arithmetic"] == "float" else 0
    flags |= FLAG_PORTABLE if header["portable"] else 0
    flags |= FLAG_WHITEN if coder["whiten_prior"] else 0
    stored = bool(header.get("stored"))
    flags |= FLAG_STORED if stored else 0
    ext = _pack_extensions(header)
    flags |= FLAG_EXTENSIONS if ext else 0
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    out.append(flags)
    for key in PRECISIONS:
        value = coder[key]
        if not isinstance(value, (int, np.integer)) or not 0 <= value <= 255:
            raise ValueError(f"{key}={value!r} does not fit a byte")
        out.append(int(value))
    for key in ("num_particles", "seed", "lanes"):
        put_varint(out, coder[key])
    put_varint(out, header["num_images"])
    shape = list(header["image_shape"])
    put_varint(out, len(shape))
    for dim in shape:
        put_varint(out, dim)
    out += bytes.fromhex(str(header["model_sha256"])[:2 * DIGEST_BYTES])
    out += bytes.fromhex(str(header["images_sha256"])[:2 * DIGEST_BYTES])
    if not stored:
        for count in header["drawn"]:
            put_varint(out, count)
    if ext:
        put_varint(out, len(ext))
        out += ext
    out += payload
    return bytes(out) + hashlib.sha256(out).digest()[:CHECK_BYTES]


def _entry(tag: int, value: bytes) -> bytes:
    out = bytearray([tag])
    put_varint(out, len(value))
    return bytes(out) + value


def _pack_extensions(header: dict[str, Any]) -> bytes:
    parts = []
    it = (header.get("posterior") or {}).get("iterative")
    if it:
        value = bytearray()
        put_varint(value, it["steps"])
        value += struct.pack("<d", float(it["lr"]))
        put_varint(value, it["num_particles"])
        put_varint(value, it["seed"])
        parts.append(_entry(EXT_ITERATIVE, bytes(value)))
    if header.get("encoder") is not None:
        text = json.dumps(header["encoder"], sort_keys=True, separators=(",", ":"))
        parts.append(_entry(EXT_ENCODER, text.encode("utf-8")))
    if header.get("names") is not None:
        value = bytearray()
        put_varint(value, len(header["names"]))
        for name in header["names"]:
            raw = str(name).encode("utf-8")
            put_varint(value, len(raw))
            value += raw
        parts.append(_entry(EXT_NAMES, bytes(value)))
    slack = header.get("step_slack")
    if slack:
        value = bytearray()
        for d, w in zip(slack["drawn"], slack["words"], strict=True):
            put_varint(value, d)
            put_varint(value, w)
        parts.append(_entry(EXT_STEP_SLACK, bytes(value)))
    if header.get("padding"):
        if not 0 < int(header["padding"]) <= limits.MAX_FILE_BYTES:
            raise ValueError(f"padding={header['padding']} is beyond any file")
        parts.append(_entry(EXT_PADDING, bytes(int(header["padding"]))))
    return b"".join(parts)


# --- reading -----------------------------------------------------------------------------------

MIN_FILE_BYTES = 4 + 1 + len(PRECISIONS) + 5 + 1 + 2 * DIGEST_BYTES + CHECK_BYTES


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
    check_front(data, where)
    if len(data) < MIN_FILE_BYTES:
        raise corrupt(where, f"only {len(data)} bytes, shorter than any header")
    body, check = memoryview(data)[:-CHECK_BYTES], bytes(data[-CHECK_BYTES:])  # no copies
    if hashlib.sha256(body).digest()[:CHECK_BYTES] != check:
        raise corrupt(where, "its integrity check does not match its contents")
    r = _Reader(body, 4, where)
    header = parse_fields(r, where)
    payload = bytes(body[r.pos:])
    validate(header, payload, where)
    return header, payload


def parse_fields(r: _Reader, where: str) -> dict[str, Any]:
    """The header dict of the fields and extensions at r (after magic and version); r ends at the
    payload. Structure only: `validate` checks the fields."""
    flags = r.byte()
    coder_id = flags >> CODER_SHIFT
    if coder_id not in CODER_BY_ID:
        raise invalid(where, f"coder id {coder_id} is not one of {sorted(CODER_BY_ID)}")
    precisions = {key: r.byte() for key in PRECISIONS}
    num_particles = r.varint("num_particles")
    seed = r.varint("seed")
    lanes = _bounded(r.varint("lanes"), 1, MAX_LANES, "lanes", where)
    num_images = _bounded(r.varint("num_images"), 1, limits.MAX_IMAGES, "num_images", where)
    ndim = _bounded(r.varint("ndim"), 1, limits.MAX_DIMS, "the image shape's dimension count", where)
    shape = [_bounded(r.varint("image_shape"), 1, limits.MAX_PIXELS, "an image dimension", where)
             for _ in range(ndim)]
    model = r.take(DIGEST_BYTES).hex()
    images = r.take(DIGEST_BYTES).hex()
    stored = bool(flags & FLAG_STORED)
    drawn = [] if stored else [r.varint("drawn") for _ in range(lanes)]
    header: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "coder": {
            "coder": CODER_BY_ID[coder_id], "num_particles": num_particles, **precisions, "seed": seed,
            "lanes": lanes, "whiten_prior": bool(flags & FLAG_WHITEN),
            "arithmetic": "float" if flags & FLAG_FLOAT else "exact",
        },
        "portable": bool(flags & FLAG_PORTABLE),
        "stored": stored,
        "posterior": {},
        "model_sha256": model,
        "num_images": num_images,
        "image_shape": shape,
        "images_sha256": images,
        "drawn": drawn,
        "padding": 0,
    }
    if flags & FLAG_EXTENSIONS:
        length = r.varint("extension length")
        _parse_extensions(r.take(length), header, where)
        if length == 0:
            raise invalid(where, "the extensions flag is set but the block is empty")
    return header


def fixed_header_bytes(lanes: int = MAX_LANES) -> int:
    """The most bytes a header's fields take before its extension block (varints of 10 bytes)."""
    return 4 + 1 + len(PRECISIONS) + 10 * (5 + limits.MAX_DIMS) + 2 * DIGEST_BYTES + 10 * lanes + 10


def _parse_extensions(block: bytes, header: dict[str, Any], where: str) -> None:
    r = _Reader(block, 0, where, "extension block")
    seen: set[int] = set()
    while not r.done():
        tag = r.byte()
        value = r.take(r.varint("extension length"))
        if tag in seen:
            raise invalid(where, f"extension {tag} appears twice")
        seen.add(tag)
        v = _Reader(value, 0, where, f"extension {tag}")
        if tag == EXT_ITERATIVE:
            steps = v.varint("iterative steps")
            (lr,) = struct.unpack("<d", v.take(8))
            particles = v.varint("iterative num_particles")
            seed = v.varint("iterative seed")
            header["posterior"] = {"iterative": {"steps": steps, "lr": lr, "num_particles": particles,
                                                 "seed": seed}}
        elif tag == EXT_ENCODER:
            if len(value) > limits.MAX_ENCODER_BYTES:
                raise invalid(where, f"the encoder record has {len(value)} bytes, above "
                                     f"{limits.MAX_ENCODER_BYTES}")
            try:
                header["encoder"] = json.loads(value.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as err:
                raise invalid(where, f"the encoder record is not UTF-8 JSON ({err})") from err
            v.pos = len(value)
        elif tag == EXT_NAMES:
            count = _bounded(v.varint("name count"), 0, limits.MAX_IMAGES, "the name count", where)
            names = []
            for _ in range(count):
                raw = v.take(_bounded(v.varint("name length"), 0, limits.MAX_NAME_BYTES,
                                      "a name's length", where))
                try:
                    names.append(raw.decode("utf-8"))
                except UnicodeDecodeError as err:
                    raise invalid(where, f"a file name is not UTF-8 ({err})") from err
            header["names"] = names
        elif tag == EXT_STEP_SLACK:
            lanes = header["coder"]["lanes"]
            pairs = [(v.varint("step slack"), v.varint("step slack")) for _ in range(lanes)]
            header["step_slack"] = {"drawn": [p[0] for p in pairs], "words": [p[1] for p in pairs]}
        elif tag == EXT_PADDING:
            if np.frombuffer(value, dtype=np.uint8).any():
                raise invalid(where, "the padding holds non-zero bytes")
            header["padding"] = len(value)
            v.pos = len(value)
        else:
            raise invalid(where, f"unknown extension {tag} (known: {sorted(EXTENSIONS)}); a newer "
                                 "mcbits may have written it")
        if not v.done():
            raise invalid(where, f"extension {tag} has {len(value) - v.pos} bytes left over")


# --- the message's lane table (the layout of rans.Message.to_bytes) -----------------------------

def message_lane_words(payload: bytes, lanes: int, lprec: int, bprec: int, where: str) -> np.ndarray:
    """Each lane's tail length in words, from a message's bytes, with its heads checked in range.

    The layout of Message.to_bytes: lanes heads of ceil((lprec + bprec) / 8) bytes, then for lanes
    > 1 one uint32 word count per lane, then the words.
    """
    head_bytes = (lprec + bprec + 7) // 8
    word_bytes = bprec // 8
    table = 4 * lanes if lanes > 1 else 0
    if len(payload) < lanes * head_bytes + table:
        raise invalid(where, f"the message has {len(payload)} bytes, fewer than the "
                             f"{lanes * head_bytes + table} its {lanes} lanes' heads need")
    low, high = 1 << lprec, 1 << (lprec + bprec)
    for lane in range(lanes):
        head = int.from_bytes(payload[lane * head_bytes:(lane + 1) * head_bytes], "little")
        if not low <= head < high:
            raise invalid(where, f"lane {lane}'s head is outside [2^lprec, 2^(lprec + bprec))")
    rest = len(payload) - lanes * head_bytes - table
    if lanes > 1:
        words = np.frombuffer(payload, dtype="<u4", count=lanes, offset=lanes * head_bytes)
        words = words.astype(np.int64)
    else:
        if rest % word_bytes:
            raise invalid(where, f"the message's tail ({rest} bytes) is not whole {bprec}-bit words")
        words = np.array([rest // word_bytes], dtype=np.int64)
    if int(words.sum()) * word_bytes != rest:
        raise invalid(where, f"the message's lane table counts {int(words.sum()) * word_bytes} tail "
                             f"bytes, the message holds {rest}")
    return words


# --- validation --------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hex16(value: Any) -> bool:
    return (isinstance(value, str) and len(value) == 2 * DIGEST_BYTES
            and all(c in "0123456789abcdef" for c in value))


def raw_bytes(num_images: int, num_pixels: int) -> int:
    """Bytes of the packed pixels: the stored payload."""
    return -(-num_images * num_pixels // 8)


def validate(header: Any, payload: bytes, where: str = "bitstream") -> CoderConfig:
    """Check every field of a header dict against SCHEMA (and the payload against the header);
    return the coder config. Raises McbitsError (an invalid header) naming the first bad field."""
    if not isinstance(header, dict):
        raise invalid(where, f"the header is a {type(header).__name__}, not a table")
    missing = [key for key, rule in SCHEMA.items()
               if key not in header and not rule.startswith("optional")]
    if missing:
        raise invalid(where, f"fields {', '.join(missing)} are missing")
    unknown = sorted(set(header) - set(SCHEMA))
    if unknown:
        raise invalid(where, f"unknown fields {', '.join(map(str, unknown))}")
    if header["format_version"] != FORMAT_VERSION:
        raise invalid(where, f"format_version={header['format_version']!r}")
    coder = header["coder"]
    if not isinstance(coder, dict):
        raise invalid(where, f"coder is a {type(coder).__name__}, not a table of parameters")
    fields = set(CoderConfig().to_dict())
    if set(coder) != fields:
        raise invalid(where, f"coder parameters: missing {sorted(fields - set(coder))}, unknown "
                             f"{sorted(map(str, set(coder) - fields))}")
    try:
        config = CoderConfig.from_dict(coder)
    except McbitsError as err:
        raise invalid(where, f"coder parameters: {err.what}") from err
    except TypeError as err:
        raise invalid(where, f"coder parameters: {err}") from err
    for key in ("portable", "stored"):
        if not isinstance(header[key], bool):
            raise invalid(where, f"{key}={header[key]!r} must be true or false")
    stored = header["stored"]
    posterior = header["posterior"]
    if not isinstance(posterior, dict) or set(posterior) - {"iterative"}:
        raise invalid(where, f"posterior={posterior!r} must be {{}} or {{'iterative': ...}}")
    iterative = posterior.get("iterative")
    if "iterative" in posterior:
        problem = limits.iterative_problem(iterative)
        if problem:
            raise invalid(where, problem)
    if header["portable"] and not (stored or config.arithmetic == "exact"):
        raise invalid(where, "the file says it is portable, but it is coded in float arithmetic")
    if stored and not header["portable"]:
        raise invalid(where, "a stored file is portable, but the flag says otherwise")
    for key in ("model_sha256", "images_sha256"):
        if not _is_hex16(header[key]):
            raise invalid(where, f"{key}={header[key]!r} must be 16 lower-case hex digits")
    num = header["num_images"]
    if not _is_int(num) or not 1 <= num <= limits.MAX_IMAGES:
        raise invalid(where, f"num_images={num!r} must be an integer in 1..{limits.MAX_IMAGES}")
    shape = header["image_shape"]
    if (not isinstance(shape, list) or not 1 <= len(shape) <= limits.MAX_DIMS
            or not all(_is_int(d) and d >= 1 for d in shape)
            or math.prod(shape) > limits.MAX_PIXELS):
        raise invalid(where, f"image_shape={shape!r} must be 1..{limits.MAX_DIMS} positive integers "
                             f"with at most {limits.MAX_PIXELS} pixels in all")
    pixels = math.prod(shape)
    if 2 * num * pixels > limits.MEMORY_LIMIT:
        raise invalid(where, f"{num} images of {pixels} pixels need more than the memory limit of "
                             f"{limits.MEMORY_LIMIT / 2**30:.0f} GiB")
    padding = header["padding"]
    if not _is_int(padding) or padding < 0:
        raise invalid(where, f"padding={padding!r} must be an integer >= 0")
    drawn = header["drawn"]
    slack = header.get("step_slack")
    if stored:
        want = raw_bytes(num, pixels)
        if len(payload) != want:
            raise invalid(where, f"the stored payload has {len(payload)} bytes; {num} images of "
                                 f"{pixels} pixels pack into {want}")
        spare = 8 * want - num * pixels
        if spare and payload[-1] & ((1 << spare) - 1):
            raise invalid(where, "the stored payload's unused last bits are not zero")
        if drawn != [] or slack is not None or padding:
            raise invalid(where, "a stored file has no drawn counts, step slack or padding")
    else:
        lanes = config.lanes
        if not isinstance(drawn, list) or len(drawn) != lanes:
            raise invalid(where, f"drawn must hold one count per lane ({lanes}), got {drawn!r}")
        if not all(_is_int(d) and 0 <= d < 1 << 62 for d in drawn):
            raise invalid(where, f"drawn counts must be integers in 0..2^62, got {drawn!r}")
        words = message_lane_words(payload, lanes, config.lprec, config.bprec, where)
        if padding != max(0, num - len(payload)):
            raise invalid(where, f"{num} images in a message of {len(payload)} bytes with {padding} "
                                 "bytes of padding: a file holds at least one byte of message or "
                                 "padding per image, and no more padding than that")
        if slack is not None:
            if (not isinstance(slack, dict) or set(slack) != {"drawn", "words"}
                    or not all(isinstance(slack[k], list) and len(slack[k]) == lanes
                               and all(_is_int(v) and 0 <= v < 1 << 62 for v in slack[k])
                               for k in ("drawn", "words"))):
                raise invalid(where, f"step_slack must hold two counts >= 0 per lane, got {slack!r}")
        for lane in range(num, lanes):  # lanes that code no image stay initial
            if drawn[lane] or words[lane] or (slack and (slack["drawn"][lane] or slack["words"][lane])):
                raise invalid(where, f"lane {lane} codes no image but has words or draws")
    if "names" in header:
        _check_names(header["names"], num, where)
    if "encoder" in header:
        enc = header["encoder"]
        if header["portable"]:
            raise invalid(where, "a portable file carries no encoder environment")
        if (not isinstance(enc, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in enc.items())):
            raise invalid(where, "the encoder environment must be a table of strings")
    return config


def _check_names(names: Any, num: int, where: str) -> None:
    if not isinstance(names, list) or len(names) != num:
        raise invalid(where, f"names must list one file name per image ({num})")
    for name in names:
        if not isinstance(name, str) or not name or name in (".", ".."):
            raise invalid(where, f"file name {name!r} is empty or not a name")
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError as err:
            raise invalid(where, f"file name {name!r} is not valid Unicode ({err})") from err
        if size > limits.MAX_NAME_BYTES:
            raise invalid(where, f"file name {name[:40]!r}... is longer than {limits.MAX_NAME_BYTES} bytes")
        if any(c in name for c in "/\\\0"):
            raise invalid(where, f"file name {name!r} holds '/', '\\\\' or NUL: names are plain file names")
