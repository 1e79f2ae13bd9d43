"""Checksums: the project's one file-SHA-256 function, and verification of files against the
digests the registry records (of the file as distributed, or of its decompressed content).

Sizes come first: where the registry records a file's size, a copy of another size is refused
before a byte of it is read or hashed (`size_problem`), a stream is cut off once it passes the
most a copy may hold, and a decompression once it passes the recorded content size.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from mcbits.atomic import os_error, publish, remove_stale_temporaries, temporary_prefix
from mcbits.data.registry import FileSpec
from mcbits.errors import McbitsError

CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes, read in chunks."""
    return hash_file(Path(path), set())["sha256"]


class SourceFailed(Exception):
    """One source could not deliver a verified file; the message says why (collected)."""


def max_bytes(spec: FileSpec) -> int | None:
    """The most bytes a copy of `spec` may have, where the registry says (None: no bound)."""
    if spec.content_digests:
        if spec.content_size is None:
            return None
        # decompressed, or in any gzip wrapping (stored deflate blocks add 5 bytes per 64 KiB)
        return max(spec.size or 0, spec.content_size + spec.content_size // 1000 + 4096)
    return spec.size


def size_problem(spec: FileSpec, size: int) -> str | None:
    """Why a copy of `size` bytes cannot be the registry's file `spec`, or None when it may be."""
    if spec.content_digests:
        limit = max_bytes(spec)
        if limit is None or size <= limit:
            return None
        return (f"checksum mismatch for {spec.name}: it has {size} bytes, more than any copy of the "
                f"registered file ({limit} at most), so it cannot match (refused without reading it)")
    if spec.size is None or size == spec.size:
        return None
    return (f"checksum mismatch for {spec.name}: it has {size} bytes, the registered file "
            f"{spec.size}, so it cannot match (refused without reading it)")


def check_size(spec: FileSpec, path: Path) -> None:
    """Raise SourceFailed when the file at `path` cannot be `spec` by its size alone."""
    problem = size_problem(spec, path.stat().st_size)
    if problem:
        raise SourceFailed(problem)


def digest_algos(digests: tuple[str, ...]) -> set[str]:
    return {d.split(":", 1)[0] for d in digests}


def new_hashers(algos: set[str]) -> dict[str, Any]:
    return {a: hashlib.new(a) for a in sorted(algos | {"sha256"})}


def content_hashes(path: Path, algos: set[str], limit: int | None = None) -> dict[str, str]:
    """Digests of the decompressed bytes (the bytes themselves when not gzip); SourceFailed when
    they pass `limit` bytes (the registry's content size)."""
    hashers = new_hashers(algos)
    seen = 0
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        opener: Callable[[], IO[bytes]] = (
            (lambda: gzip.open(path, "rb")) if gz else (lambda: open(path, "rb"))
        )
        with opener() as f:
            while chunk := f.read(CHUNK):
                seen += len(chunk)
                if limit is not None and seen > limit:
                    raise SourceFailed(f"its content is larger than the {limit} bytes the registry "
                                       "records (decompression stopped there)")
                for h in hashers.values():
                    h.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceFailed(f"corrupt or truncated gzip data ({err})") from err
    return {a: h.hexdigest() for a, h in hashers.items()}


def match_digest(spec: FileSpec, path: Path, file_hashes: dict[str, str]) -> str:
    """Return the digest that verifies `path` (content ones prefixed `content-`), or raise."""
    for digest in spec.digests:
        algo, value = digest.split(":", 1)
        if file_hashes.get(algo) == value.lower():
            return digest
    content: dict[str, str] = {}
    if spec.content_digests:
        content = content_hashes(path, digest_algos(spec.content_digests), spec.content_size)
        for digest in spec.content_digests:
            algo, value = digest.split(":", 1)
            if content.get(algo) == value.lower():
                return f"content-{digest}"
    expected = " or ".join([*spec.digests, *(f"content-{d}" for d in spec.content_digests)])
    got = ", ".join(f"{a}:{v}" for a, v in sorted(file_hashes.items()))
    if content:
        got += ", " + ", ".join(f"content-{a}:{v}" for a, v in sorted(content.items()))
    raise SourceFailed(f"checksum mismatch for {spec.name}: expected {expected}; got {got}")


def hash_file(path: Path, algos: set[str]) -> dict[str, str]:
    hashers = new_hashers(algos)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def verify_in_place(path: Path, spec: FileSpec) -> tuple[str, str]:
    """(matched digest, sha256) of a file that matches `spec`; raises SourceFailed otherwise (by
    its size alone, unread, where the registry records one)."""
    check_size(spec, path)
    hashes = hash_file(path, digest_algos(spec.digests))
    return match_digest(spec, path, hashes), hashes["sha256"]


def verify_file(path: str | os.PathLike, spec: FileSpec) -> str:
    """Check a file against `spec`'s digests; return the digest that matched, else McbitsError."""
    path = Path(path)
    try:
        return verify_in_place(path, spec)[0]
    except FileNotFoundError as err:
        raise McbitsError(f"{path} does not exist", where=str(path)) from err
    except SourceFailed as err:
        raise McbitsError(
            f"{path}: {err}",
            where=str(path),
            remedy="delete the file and fetch it again (or replace the mirror copy it came from)",
        ) from err


def copy_verified(
    stream: IO[bytes], dest: Path, spec: FileSpec, *, total: int | None, desc: str, progress: bool
) -> tuple[str, str]:
    """Copy `stream` to a temporary file beside `dest` while hashing; rename once verified.

    total: the source's size where known, checked against the registry's before any byte is read;
    a stream that runs past the most a copy may hold is cut off. SourceFailed for a bad source;
    McbitsError when `dest` cannot be written (no other source would do better).
    """
    if total is not None:
        problem = size_problem(spec, total)
        if problem:
            raise SourceFailed(problem)
    limit = max_bytes(spec)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(dest)  # a killed fetch's partial copy
        fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(dest), suffix=".tmp", dir=dest.parent)
    except OSError as err:
        raise os_error(err, dest) from err
    tmp = Path(tmp_name)
    hashers = new_hashers(digest_algos(spec.digests))
    copied = 0
    try:
        with os.fdopen(fd, "wb") as out, byte_progress(total, desc, progress) as bar:
            while chunk := stream.read(CHUNK):
                copied += len(chunk)
                if limit is not None and copied > limit:
                    raise SourceFailed(size_problem(spec, copied) or f"{spec.name} is too large")
                try:
                    out.write(chunk)
                except OSError as err:
                    raise os_error(err, dest) from err
                for h in hashers.values():
                    h.update(chunk)
                bar.update(len(chunk))
        hashes = {a: h.hexdigest() for a, h in hashers.items()}
        matched = match_digest(spec, tmp, hashes)
        try:
            publish(tmp, dest)
        except OSError as err:
            raise os_error(err, dest) from err
        return matched, hashes["sha256"]
    finally:
        tmp.unlink(missing_ok=True)


def byte_progress(total: int | None, desc: str, progress: bool) -> tqdm:
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
