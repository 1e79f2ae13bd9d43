"""Compressed files: a compact header, the rANS message (or the stored pixels), and a check.

The byte layout, the schema of every header field and the reading order are in
mcbits.coding.header (format version 3); the resource limits in mcbits.coding.limits. Here:

- `encode_to_file` codes images and writes the file atomically. It keeps the coded message unless
  the images' raw packed bits (8 pixels a byte) make a smaller file: then it stores those
  ("stored" files), so no file is larger than the raw bits plus the header. The header carries
  every parameter decoding needs, digests of the checkpoint and of the images (with their shape),
  each lane's drawn-word count, and what the encoder's arithmetic depends on (only for files that
  are not portable, where a decode on another machine can come out different).
- `Bitstream.open` reads a file and validates the whole header once, before any work; its
  `decode(model)` checks the file against the model (checkpoint, pixels, arithmetic, posterior,
  memory), decodes, and returns the images only when they reproduce the encoded images' digest and
  the message returns to its initial state. `read_header`, `decode_from_file` and
  `decode_with_names` are the one-call forms. Every failure is an
  McbitsError that tells apart: not a bitstream, an unsupported version, corruption (the check),
  an invalid header, a file for another model or other parameters, and (only for files that are
  not portable) a coding arithmetic that differs from the encoder's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import platform
import stat
from pathlib import Path
from typing import Any

import numpy as np

from mcbits import __version__
from mcbits.atomic import write_bytes_atomic
from mcbits.coding import header as fmt
from mcbits.coding import limits
from mcbits.coding.coders import Coder, DecodeFailure, ProgressFn, make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.rans import Message, MessageLayout
from mcbits.errors import McbitsError

FORMAT_VERSION = fmt.FORMAT_VERSION
MAGIC = fmt.MAGIC + bytes([fmt.FORMAT_VERSION])
pack = fmt.pack


def images_digest(images: np.ndarray) -> str:
    """First 8 bytes (16 hex digits) of the SHA-256 of 0/1 images (n, ...) packed 8 pixels a byte
    per image, followed by their shape: a decode must reproduce both."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim < 1:
        raise ValueError("images need a leading image axis")
    flat = images.reshape(images.shape[0], -1)
    shape = tuple(int(d) for d in images.shape)
    digest = hashlib.sha256(np.packbits(flat, axis=1).tobytes() + repr(shape).encode())
    return digest.hexdigest()[:2 * fmt.DIGEST_BYTES]


def model_digest(model_sha256: str, where: str = "model_sha256") -> str:
    """The checkpoint digest a header stores: the first 16 hex digits of its SHA-256."""
    text = str(model_sha256).lower()
    if len(text) < 16 or any(c not in "0123456789abcdef" for c in text):
        raise McbitsError(f"model_sha256={str(model_sha256)[:70]!r} is not a SHA-256 hex digest",
                          where=where, remedy="pass the checkpoint's SHA-256 (64 hex digits)")
    return text[:2 * fmt.DIGEST_BYTES]


def _installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, str]:
    """What float coding arithmetic depends on: stored by the encoder of a non-portable file,
    compared by its decoder. torch's version comes from its installed metadata (the same string as
    torch.__version__), so the coding layer records it without importing torch."""
    import numba

    return {
        "mcbits": __version__,
        "torch": _installed_version("torch"),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
    }


@dataclasses.dataclass
class EncodeResult:
    """What encode_to_file wrote. message_bits, net_bits and initial_bits describe the coder's rANS
    message (also when the file stores the raw bits instead: `stored`); file_bytes is the file,
    header_bytes everything in it but the payload (header, extensions, check)."""

    path: Path
    num_images: int
    num_dims: int
    file_bytes: int
    message_bits: int
    net_bits: float
    initial_bits: float
    header_bytes: int = 0
    stored: bool = False

    @property
    def net_bpd(self) -> float:
        return self.net_bits / self.num_dims

    @property
    def total_bpd(self) -> float:
        return self.message_bits / self.num_dims

    @property
    def file_bpd(self) -> float:
        return 8 * self.file_bytes / self.num_dims


def unpack(data: bytes, where: str = "bitstream") -> tuple[dict[str, Any], bytes]:
    """Split a file's bytes into (validated header dict, payload)."""
    return fmt.parse(data, where)


def is_portable(coder: Coder) -> bool:
    """Whether the coder's bits depend on nothing but integers (exact arithmetic, plain posterior)."""
    return coder.config.arithmetic == "exact" and getattr(coder.model, "portable", True)


def _model_posterior(model: Any) -> dict[str, Any]:
    settings = getattr(model, "settings", None)
    return dict(settings()) if callable(settings) else {}


def _posterior_settings(posterior: dict[str, Any] | None) -> dict[str, Any]:
    posterior = dict(posterior or {})
    if posterior.get("iterative"):
        it = dict(posterior["iterative"])
        if isinstance(it.get("lr"), int) and not isinstance(it.get("lr"), bool):
            it["lr"] = float(it["lr"])
        posterior["iterative"] = it
    elif "iterative" in posterior:
        posterior.pop("iterative")
    return posterior


class _LaneBounds:
    """A progress function that follows, per lane, the drawn and tail-word counts at the step
    boundaries of a coding run. Coders may code lane groups in parallel threads, each on a message
    of its own lanes: a part's first lane is found from its lane seeds (distinct per lane).

    record=True (encode): keep the largest counts. record=False (decode): raise _Diverged when a
    count goes above the given bounds (a correct decode passes through the encoder's states).
    """

    def __init__(self, message: Message, progress: ProgressFn | None, *, record: bool,
                 max_drawn: np.ndarray | None = None, max_words: np.ndarray | None = None):
        self.first_lane = {int(s): lane for lane, s in enumerate(message.lane_seeds)}
        lanes = message.lanes
        self.record = record
        self.max_drawn = np.zeros(lanes, np.int64) if max_drawn is None else max_drawn
        self.max_words = np.zeros(lanes, np.int64) if max_words is None else max_words
        self.progress = progress

    def __call__(self, count: int, message: Message) -> None:
        start = self.first_lane[int(message.lane_seeds[0])]
        lanes = slice(start, start + message.lanes)
        if self.record:
            np.maximum(self.max_drawn[lanes], message.drawn, out=self.max_drawn[lanes])
            np.maximum(self.max_words[lanes], message.lens, out=self.max_words[lanes])
        elif (message.drawn > self.max_drawn[lanes]).any() or (message.lens > self.max_words[lanes]).any():
            raise _Diverged("the message left the bounds the encoder recorded")
        if self.progress is not None:
            self.progress(count, message)


def _coded_images(images: np.ndarray, image_shape: tuple[int, ...] | None,
                  where: str) -> tuple[np.ndarray, list[int]]:
    """The images as (n, pixels) 0/1 rows and the shape of one image, checked."""
    images = np.asarray(images)
    if images.ndim < 2:
        raise McbitsError(f"images have shape {images.shape}; expected (n, pixels) or (n, ...)",
                          where=where, remedy="pass an array with a leading image axis")
    num = int(images.shape[0])
    if num < 1:
        raise McbitsError("cannot encode: no images (a file holds 1 or more)", where=where,
                          remedy="pass at least one image")
    flat = images.reshape(num, -1)
    shape = [int(d) for d in (image_shape if image_shape is not None else images.shape[1:])]
    if int(np.prod(shape)) != flat.shape[1]:
        raise McbitsError(f"image_shape {tuple(shape)} does not hold {flat.shape[1]} pixels", where=where)
    return flat, shape


def encode_to_file(
    path: str | os.PathLike,
    images: np.ndarray,
    coder: Coder,
    *,
    model_sha256: str,
    image_shape: tuple[int, ...] | None = None,
    posterior: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    names: list[str] | None = None,
    stored: bool | None = None,
) -> EncodeResult:
    """Encode 0/1 images (n, P) or (n, ...) with `coder` and write the bitstream file atomically.

    posterior: the settings of the coder's posterior beyond the model ({"iterative": {...}}, as
        IterativePosterior.settings()), stored so that the decoder can rebuild it; by default the
        model's own settings() (none for a plain model).
    names: optional original file names, one per image (returned by `decode_with_names`).
    stored: None (default): store the raw packed bits when that makes the smaller file; False:
        always keep the coded message; True: always store.
    The same limits and header validation as a decoder's apply, before and after coding.
    """
    where = str(path)
    flat, shape = _coded_images(images, image_shape, where)
    num = flat.shape[0]
    config, model = coder.config, coder.model
    header = fmt.new_header(
        config, portable=is_portable(coder), model_sha256=model_digest(model_sha256), num_images=num,
        posterior=_posterior_settings(_model_posterior(model) if posterior is None else posterior),
        image_shape=shape, images_sha256=images_digest(flat.reshape(num, *shape)))
    if names is not None:
        header["names"] = [str(n) if isinstance(n, (str, os.PathLike)) else n for n in names]
    if not header["portable"]:
        header["encoder"] = environment()
    # the header's fields, and the decoder's checks against the model, before any coding
    _prevalidate(header, where)
    if _posterior_settings(_model_posterior(model)) != header["posterior"]:
        raise McbitsError(f"cannot encode: posterior={posterior!r} is not the model's "
                          f"({_model_posterior(model) or 'plain'})", where=where,
                          remedy="pass posterior=model.settings(), or leave it out")
    _check_against_model(header, config, model, where, tail_words=0)

    message = coder.new_message()
    tracker = _LaneBounds(message, progress, record=True)
    message = coder.encode(flat, message=message, progress=tracker)
    data, use_stored = _smaller_file(header, message, tracker, flat, stored)
    # what a decoder will check, on the bytes themselves
    check_header, payload, check_config, words = fmt.parse_full(data, where)
    if not use_stored:
        _check_against_model(check_header, check_config, model, where,
                             tail_words=_tail_bound(check_header, words), file_bytes=len(data))
    write_bytes_atomic(path, data)
    return EncodeResult(path=Path(path), num_images=num, num_dims=int(flat.size), file_bytes=len(data),
                        message_bits=message.total_bits, net_bits=message.net_bits,
                        initial_bits=message.initial_bits, header_bytes=len(data) - len(payload),
                        stored=use_stored)


def _smaller_file(header: dict[str, Any], message: Message, tracker: _LaneBounds, flat: np.ndarray,
                  stored: bool | None) -> tuple[bytes, bool]:
    """The file's bytes, coded or stored (`stored`; None: whichever is smaller), and which."""
    msg_bytes = message.to_bytes()
    final_drawn = message.drawn.astype(np.int64)
    slack_drawn = tracker.max_drawn - final_drawn
    slack_words = tracker.max_words - message.lens.astype(np.int64)
    coded = {**header, "drawn": [int(d) for d in final_drawn],
             "padding": max(0, header["num_images"] - len(msg_bytes))}
    if slack_drawn.any() or slack_words.any():
        coded["step_slack"] = {"drawn": [int(d) for d in slack_drawn],
                               "words": [int(w) for w in slack_words]}
    data = fmt.pack(coded, msg_bytes)
    raw = np.packbits(np.ascontiguousarray(flat, dtype=np.uint8).reshape(-1)).tobytes()
    kept = {**header, "portable": True, "stored": True, "drawn": []}
    kept.pop("encoder", None)
    raw_data = fmt.pack(kept, raw)
    use_stored = len(raw_data) < len(data) if stored is None else bool(stored)
    return (raw_data, True) if use_stored else (data, False)


def _prevalidate(header: dict[str, Any], where: str) -> None:
    """Validate an encoder's header fields before coding (as if stored: no message yet)."""
    probe = {**header, "stored": True, "portable": True, "drawn": []}
    probe.pop("encoder", None)
    try:
        fmt.validate_fields(probe, where)
    except fmt.InvalidHeader as err:
        raise McbitsError(f"cannot encode: {err.detail}", where=where,
                          remedy="check the images, names and parameters passed to the encoder") from err


SMALL_FILE_BYTES = 1 << 20  # files up to this size are read whole, then parsed


class _FileReader(fmt._Reader):
    """A header reader over a file's first bytes that reads more of the file (up to `end`, the
    start of the check) only as a field needs it."""

    def __init__(self, f: Any, front: bytes, end: int, where: str):
        super().__init__(bytearray(front), 0, where)
        self.f, self.end = f, end

    def ensure(self, n: int) -> None:
        """Hold the file's first min(n, end) bytes."""
        want = min(n, self.end)
        if want > len(self.data):
            self.data += self.f.read(max(want - len(self.data), min(1 << 16, self.end - len(self.data))))

    def take(self, n: int) -> bytes:
        if n >= 0:
            self.ensure(self.pos + n)
        if n < 0 or self.pos + n > min(len(self.data), self.end):
            raise fmt.invalid(self.where, f"the header ends early (at byte {self.end}, {n} more "
                                          f"needed at byte {self.pos})")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk


def _streamed_check(f: Any, size: int) -> bool:
    """Whether a file's check matches its contents, hashed in pieces (constant memory)."""
    f.seek(0)
    digest = hashlib.sha256()
    left = size - fmt.CHECK_BYTES
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            return False
        digest.update(chunk)
        left -= len(chunk)
    return digest.digest()[:fmt.CHECK_BYTES] == f.read(fmt.CHECK_BYTES)


def _tail_bound(header: dict[str, Any], words: np.ndarray) -> int:
    """The most tail words any lane holds at a step boundary: the final words plus the slack."""
    slack = header.get("step_slack") or {"words": [0] * len(words)}
    return int((words + np.asarray(slack["words"], dtype=np.int64)).max())


_REFUSE = ("the file is damaged, or was not written by mcbits encode (which never writes a file its "
           "decoder refuses)")


class Bitstream:
    """A bitstream file opened once: its header read and validated (`open`), then decoded with a
    model built for it (`decode`). A file up to SMALL_FILE_BYTES is read whole at `open`; a larger
    one is refused from its size and header before its payload is read, which happens once, in
    `payload` (the check hashed over header and payload)."""

    def __init__(self, path: Path, header: dict[str, Any], config: CoderConfig, payload_bytes: int,
                 words: np.ndarray | None, *, payload: bytes | None = None, head: bytes = b""):
        self.path, self.where = path, str(path)
        self.header, self.config = header, config
        self.payload_bytes = payload_bytes
        self.words = words  # each lane's tail words (rANS files), from the lane table
        self._payload, self._head = payload, head

    @classmethod
    def open(cls, path: str | os.PathLike, *, max_work: int | None = None,
             check_work: bool = True) -> Bitstream:
        """Read and validate a file's header (and a small file's payload). check_work: refuse a
        file whose decode takes more than max_work decoder-network rows (limits.check_work)."""
        path = Path(path)
        where = str(path)
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):  # never open a FIFO or a device
                raise McbitsError(f"{path} is not a regular file", where=where,
                                  remedy="pass a file written by mcbits encode")
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                front = f.read(min(size, 8))
                fmt.check_front(front, where)
                if size > limits.MAX_FILE_BYTES:
                    raise McbitsError(f"{path} has {size} bytes, more than {limits.MAX_FILE_BYTES}, the "
                                      "limit for a bitstream", where=where,
                                      remedy="pass a file written by mcbits encode")
                if size <= SMALL_FILE_BYTES:
                    header, payload, config, words = fmt.parse_full(front + f.read(size - len(front)), where)
                    stream = cls(path, header, config, len(payload), words, payload=payload)
                else:
                    stream = cls._open_large(path, f, size, front)
        except OSError as err:
            raise McbitsError(f"cannot read {path}: {err.strerror or err}", where=where,
                              remedy="check the path and its permissions") from err
        if check_work:
            limits.check_work(stream.header, max_work, where=where)
        return stream

    @classmethod
    def _open_large(cls, path: Path, f: Any, size: int, front: bytes) -> Bitstream:
        """The header of a file above SMALL_FILE_BYTES, and the size rule: read_memory from the
        file's size and header (the stored payload's exact size, or the file, its message's tails
        and the images within MEMORY_LIMIT)."""
        where = str(path)
        end = size - fmt.CHECK_BYTES
        r = _FileReader(f, front, end, where)
        r.ensure(fmt.fixed_header_bytes(1))
        r.pos = len(fmt.MAGIC)
        try:
            header = fmt.parse_fields(r, where)
            config = fmt.validate_fields(header, where)
        except McbitsError:
            if not _streamed_check(f, size):  # a damaged file, not an invalid header
                raise fmt.corrupt(where, "its integrity check does not match its contents") from None
            raise
        start = r.pos
        payload_bytes = end - start
        num, pixels = header["num_images"], int(np.prod(header["image_shape"]))
        if header["stored"]:
            want = fmt.raw_bytes(num, pixels)
            if payload_bytes != want:
                raise McbitsError(f"the file has {size} bytes: its header's {num} stored images of "
                                  f"{pixels} pixels pack into {want} bytes of payload, it holds "
                                  f"{payload_bytes}", where=where, remedy=_REFUSE)
            return cls(path, header, config, payload_bytes, None, head=bytes(r.data[:start]))
        layout = MessageLayout(config.lanes, config.lprec, config.bprec)
        r.ensure(start + layout.front_bytes)
        words = layout.table_words(payload_bytes, bytes(r.data[start:]))
        longest = layout.longest_tail(payload_bytes, bytes(r.data[start:])) if words is None \
            else int(words.max())
        estimate = limits.read_memory(file_bytes=size, lanes=config.lanes, tail_words=longest,
                                      num_images=num, num_pixels=pixels)
        limits.check_memory(estimate, where=where, remedy=_REFUSE,
                            what=f"decoding this file of {size} bytes (from its size and header)")
        if words is None:  # the table does not add up (an invalid file): bound by the whole tail
            words = np.full(config.lanes, longest, dtype=np.int64)
        return cls(path, header, config, payload_bytes, words, head=bytes(r.data[:start]))

    @property
    def names(self) -> list[str] | None:
        """The original file names the header stores, or None."""
        return self.header.get("names")

    def payload(self) -> bytes:
        """The payload, read (once) and checked against the header now if it was not at `open`."""
        if self._payload is None:
            try:
                with open(self.path, "rb") as f:
                    f.seek(len(self._head))
                    payload = f.read(self.payload_bytes)  # one copy, the only one
                    check = f.read(fmt.CHECK_BYTES)
            except OSError as err:
                raise McbitsError(f"cannot read {self.path}: {err.strerror or err}", where=self.where,
                                  remedy="check the path and its permissions") from err
            digest = hashlib.sha256(self._head)
            digest.update(payload)
            if len(payload) != self.payload_bytes or digest.digest()[:fmt.CHECK_BYTES] != check:
                raise fmt.corrupt(self.where, "its integrity check does not match its contents")
            fmt.validate_payload(self.header, self.config, payload, self.where)
            self._payload = payload
        return self._payload

    def decode(self, model: Any, *, model_sha256: str, progress: ProgressFn | None = None) -> np.ndarray:
        """Decode with `model`, the CodingModel of the file's checkpoint built for the header's
        arithmetic and posterior; returns the images in their original shape. The model is checked
        against the header (checkpoint, pixels, arithmetic, posterior, memory, drawn words) before
        the payload is read or any decoding work."""
        header, config, where = self.header, self.config, self.where
        check_model(header, model_sha256, where)
        shape = (header["num_images"], *header["image_shape"])
        if header["stored"]:
            _check_against_model(header, config, model, where, tail_words=0)
            flat = np.unpackbits(np.frombuffer(self.payload(), dtype=np.uint8), count=int(np.prod(shape)))
            images = flat.reshape(shape)
            if images_digest(images) != header["images_sha256"]:
                raise _mismatch(header, where, "the stored pixels do not match the images' digest")
            if progress is not None:
                progress(shape[0], Message(lanes=1))
            return images
        _check_against_model(header, config, model, where, tail_words=_tail_bound(header, self.words),
                             file_bytes=self.payload_bytes)
        payload = self.payload()
        self._payload = None  # the message holds its own copy of the words
        images = _decode_message(header, config, make_coder(model, config), payload, self.words,
                                 progress, where)
        return images.reshape(shape)


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """Read a bitstream file and validate its whole header: (header dict, payload bytes).

    The header's fields are mcbits.coding.header.FIELDS; `coder` is a CoderConfig.to_dict(),
    `posterior` {} or {"iterative": {...}}, `model_sha256` and `images_sha256` 16-hex-digit
    digests; `encoder` is present only in non-portable files. A file is refused from its size and
    header before its payload is read when reading it would pass the memory limit (Bitstream).
    """
    stream = Bitstream.open(path, check_work=False)
    return stream.header, stream.payload()


def check_model(header: dict[str, Any], model_sha256: str, where: str) -> None:
    """Raise McbitsError unless the header names the checkpoint with this SHA-256 (its prefix)."""
    ours = model_digest(model_sha256, where)
    theirs = str(header.get("model_sha256"))
    if theirs != ours:
        raise McbitsError(
            f"the file was encoded with model {theirs[:12]}..., "
            f"not with this checkpoint ({ours[:12]}...)",
            where=where,
            remedy="decode with the checkpoint the file was encoded with (same SHA-256)",
        )


def _other_parameters(where: str, what: str, remedy: str) -> McbitsError:
    return McbitsError(f"the file is for other parameters: {what}", where=where, remedy=remedy)


def _check_against_model(header: dict[str, Any], config: CoderConfig, model: Any, where: str, *,
                         tail_words: int, file_bytes: int = 0) -> None:
    """Before any decoding work: the file fits this model (pixels, arithmetic, posterior) and its
    decode stays within the memory limit and the drawn-word bounds."""
    pixels = int(np.prod(header["image_shape"]))
    if pixels != int(model.num_pixels):
        raise McbitsError(
            f"the file holds images of {pixels} pixels (shape {tuple(header['image_shape'])}); this "
            f"model codes {model.num_pixels}",
            where=where, remedy="decode with the checkpoint the file was encoded with")
    if header["stored"]:
        return
    arithmetic = getattr(model, "arithmetic", "float")
    if arithmetic != config.arithmetic:
        raise _other_parameters(
            where, f"it was coded in {config.arithmetic} arithmetic, the model given computes in "
            f"{arithmetic}", "build the model for the file's arithmetic (mcbits.loading.decoder_model)")
    ours = _model_posterior(model)
    if _posterior_settings(ours) != header["posterior"]:
        raise _other_parameters(
            where, f"it was coded with posterior {header['posterior'] or 'plain (no iterative inference)'}"
            f", the model given has {ours or 'plain'}",
            "build the model from the header (mcbits.loading.decoder_model)")
    num = header["num_images"]
    latent_dim = int(model.latent_dim)
    estimate = limits.coding_memory(config, latent_dim=latent_dim, num_pixels=pixels, num_images=num,
                                    tail_words=tail_words, file_bytes=file_bytes,
                                    iterative=header["posterior"].get("iterative"))
    limits.check_memory(estimate, where=where,
                        remedy="use fewer lanes or particles, fewer buckets, or fewer images a file")
    slack = header.get("step_slack") or {"drawn": [0] * config.lanes}
    for lane, (drawn, extra) in enumerate(zip(header["drawn"], slack["drawn"], strict=True)):
        top = limits.max_drawn_words(config, latent_dim, limits.images_in_lane(num, config.lanes, lane))
        if drawn + extra > top:
            raise fmt.invalid(where, f"lane {lane} drew {drawn + extra} words; its images can draw at "
                                     f"most {top}")


class _Diverged(Exception):
    pass


def _mismatch(header: dict[str, Any], where: str, detail: str) -> McbitsError:
    """The decode did not reproduce the encoded images: say why as far as it can be known."""
    if header["portable"]:
        return McbitsError(
            f"decoding did not reproduce the encoded images ({detail}). The file is portable "
            "(exact arithmetic, which decodes identically everywhere) and passed its integrity "
            "check, so its header and message disagree: it was edited and resealed, or written by a "
            "faulty encoder",
            where=where,
            remedy="encode the images again; if an unmodified file written by mcbits encode does "
            "this, report it as an mcbits bug",
        )
    here = environment()
    theirs = header.get("encoder")
    if theirs == here:
        env = ", ".join(f"{k} {v}" for k, v in here.items())
        return McbitsError(
            f"decoding did not reproduce the encoded images ({detail}). The file is not portable, but "
            f"this machine's environment is the encoder's ({env}), "
            "so the arithmetic is the same: the file's header and message disagree (edited and "
            "resealed, or written by a faulty encoder)",
            where=where,
            remedy="encode the images again (with exact arithmetic, the default, for a portable file)",
        )
    if isinstance(theirs, dict):
        keys = sorted(set(theirs) | set(here))
        diff = "; ".join(f"{k}: {theirs.get(k, '?')} there, {here.get(k, '?')} here"
                         for k in keys if theirs.get(k) != here.get(k))
    else:
        diff = "the file does not say where it was encoded"
    return McbitsError(
        f"decoding did not reproduce the encoded images ({detail}): the coding arithmetic differed. "
        "The file is not portable (float arithmetic or iterative inference): it decodes only with "
        f"the encoder's CPU and torch/numpy build. Encoded with another environment ({diff})",
        where=where,
        remedy="decode on the machine that encoded it, or re-encode with exact arithmetic (the "
        "default) and without iterative inference for a portable file",
    )


def _decode_message(header: dict[str, Any], config: CoderConfig, coder: Coder, payload: bytes,
                    words: np.ndarray, progress: ProgressFn | None, where: str) -> np.ndarray:
    """Decode a checked file's message; the images only when the decode reproduces the encoder's
    (its digest, the message back at its initial state, every count within the recorded bounds)."""
    slack = header.get("step_slack") or {"drawn": [0] * config.lanes, "words": [0] * config.lanes}
    max_drawn = np.asarray(header["drawn"], dtype=np.int64) + np.asarray(slack["drawn"], dtype=np.int64)
    max_words = words + np.asarray(slack["words"], dtype=np.int64)
    try:
        message = Message.from_bytes(payload, lanes=config.lanes, lprec=config.lprec,
                                     bprec=config.bprec, seed=config.seed, drawn=header["drawn"])
        del payload  # the message holds its own copy of the words
        guard = _LaneBounds(message, progress, record=False, max_drawn=max_drawn, max_words=max_words)
        images = coder.decode(message, header["num_images"], progress=guard)
    except _Diverged as err:
        raise _mismatch(header, where, "the message grew past the word counts the encoder recorded in "
                                       "the header") from err
    except (MemoryError, KeyboardInterrupt):
        raise
    except DecodeFailure as err:
        # In the file's terms, not the coder's: the coder's own error stays in the chain (shown with
        # MCBITS_TRACEBACK=1), never in the message.
        raise _mismatch(header, where, "its message broke off: decoding reached a code that no "
                                       "encode of images with this model and the header's parameters "
                                       "writes") from err
    except Exception as err:  # noqa: BLE001 - not the file's doing: say so, never blame the file
        raise McbitsError(
            f"decoding stopped on an error inside mcbits ({type(err).__name__}), not on anything "
            "found wrong with the file",
            where=where,
            remedy="rerun with MCBITS_TRACEBACK=1 and report the traceback as an mcbits bug",
        ) from err
    images = images.reshape((header["num_images"], *header["image_shape"]))
    if images_digest(images) != header["images_sha256"]:
        raise _mismatch(header, where, "the decoded images do not match the encoded images' checksum")
    if not message.is_initial:
        raise _mismatch(header, where, "the message did not return to its initial state")
    return images


def decode_with_names(
    path: str | os.PathLike,
    model: Any,
    *,
    model_sha256: str,
    progress: ProgressFn | None = None,
    max_work: int | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """Decode a bitstream file: (images in their original shape, original file names or None).

    `model` is the CodingModel of the file's checkpoint, built for the header's arithmetic and
    posterior (mcbits.loading.decoder_model). Everything is checked before decoding; see the module
    doc. max_work: the work budget in decoder-network rows (limits.decode_work; None: the default,
    limits.default_work_budget: 8,192 rows per image, at most 2^25); a file that asks for more
    is refused before any decoding.
    Memory: a file is refused from its size and header before its payload is read, and from the
    model's estimate (limits.coding_memory) before decoding; the payload is read once.
    """
    stream = Bitstream.open(path, max_work=max_work)
    return stream.decode(model, model_sha256=model_sha256, progress=progress), stream.names


def decode_from_file(
    path: str | os.PathLike,
    model: Any,
    *,
    model_sha256: str,
    progress: ProgressFn | None = None,
    max_work: int | None = None,
) -> np.ndarray:
    """Decode a bitstream file with `model`; returns the images in their original shape.

    Raises McbitsError on a file for another model or other parameters, a corrupt or invalid file,
    a file whose decode needs more memory than limits.MEMORY_LIMIT or more work than max_work
    (decoder-network rows, default limits.default_work_budget), or a decode that does not reproduce
    the encoded images.
    """
    return decode_with_names(path, model, model_sha256=model_sha256, progress=progress,
                             max_work=max_work)[0]
