"""Checksums: the project's one file-SHA-256 function, and verification of files against the
digests the registry records (of the file as distributed, or of its decompressed content).
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

from mcbits.atomic import publish
from mcbits.data.registry import FileSpec
from mcbits.errors import McbitsError

CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes, read in chunks."""
    return hash_file(Path(path), set())["sha256"]


class SourceFailed(Exception):
    """One source could not deliver a verified file; the message says why (collected)."""


def digest_algos(digests: tuple[str, ...]) -> set[str]:
    return {d.split(":", 1)[0] for d in digests}


def new_hashers(algos: set[str]) -> dict[str, Any]:
    return {a: hashlib.new(a) for a in sorted(algos | {"sha256"})}


def content_hashes(path: Path, algos: set[str]) -> dict[str, str]:
    """Digests of the decompressed bytes (the bytes themselves when not gzip)."""
    hashers = new_hashers(algos)
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        opener: Callable[[], IO[bytes]] = (
            (lambda: gzip.open(path, "rb")) if gz else (lambda: open(path, "rb"))
        )
        with opener() as f:
            while chunk := f.read(CHUNK):
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
        content = content_hashes(path, digest_algos(spec.content_digests))
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
    """(matched digest, sha256) of a file that matches `spec`; raises SourceFailed otherwise."""
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
    """Copy `stream` to a temporary file beside `dest` while hashing; rename once verified."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    hashers = new_hashers(digest_algos(spec.digests))
    try:
        with os.fdopen(fd, "wb") as out, byte_progress(total, desc, progress) as bar:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                bar.update(len(chunk))
        hashes = {a: h.hexdigest() for a, h in hashers.items()}
        matched = match_digest(spec, tmp, hashes)
        publish(tmp, dest)
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
