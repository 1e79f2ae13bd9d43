"""HTTP downloads: progress bar, resume (HTTP Range) and retry of a broken transfer, checksum,
then rename into place.
"""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from mcbits import __version__
from mcbits.atomic import publish
from mcbits.data.checksums import CHUNK, SourceFailed, byte_progress, verify_in_place
from mcbits.data.registry import FileSpec
from mcbits.errors import McbitsError

# Download behaviour; module-level so that tests (and impatient users) can shorten them.
DOWNLOAD_RETRIES = 4  # further attempts after the first, resuming where the last one stopped
DOWNLOAD_BACKOFF_S = 1.0  # wait before retry k is DOWNLOAD_BACKOFF_S * 2**k
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation (connect, each read), not the whole transfer
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    """A failure worth another attempt; `connect` when no response came at all."""

    def __init__(self, message: str, *, connect: bool = False):
        super().__init__(message)
        self.connect = connect


def _describe_url_error(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"unreachable ({err.reason})"
    return f"{type(err).__name__}: {err}"


def download(
    url: str,
    dest: str | os.PathLike,
    spec: FileSpec | None = None,
    *,
    retries: int | None = None,
    backoff_s: float | None = None,
    timeout_s: float | None = None,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`: progress bar, resume (HTTP Range) and retry, checksum, rename.

    The transfer goes to `<dest>.part`; a broken transfer is resumed from where it stopped (also
    across calls), a server that ignores Range is read from the start. Only a copy that matches
    `spec` is renamed to `dest`; a mismatch deletes the partial file. Raises McbitsError.
    """
    dest = Path(dest)
    try:
        try_download(url, dest, spec, retries, backoff_s, timeout_s, progress)
    except SourceFailed as err:
        raise McbitsError(
            f"download of {url} failed: {err}",
            where=str(dest),
            remedy="check the network (or proxy) and retry, or supply the file through a mirror",
        ) from err
    return dest


def try_download(
    url: str,
    dest: Path,
    spec: FileSpec | None,
    retries: int | None,
    backoff_s: float | None,
    timeout_s: float | None,
    progress: bool,
) -> None:
    retries = DOWNLOAD_RETRIES if retries is None else retries
    backoff_s = DOWNLOAD_BACKOFF_S if backoff_s is None else backoff_s
    timeout_s = DOWNLOAD_TIMEOUT_S if timeout_s is None else timeout_s
    part = dest.with_name(dest.name + ".part")
    last_error = "no attempt made"
    attempt = 0
    unanswered = 0  # attempts in a row that got no response at all
    while True:
        resumed = part.exists() and part.stat().st_size > 0
        try:
            _transfer(url, part, timeout_s, progress, dest.name)
            if spec is not None:
                try:
                    verify_in_place(part, spec)
                except SourceFailed:
                    # A resumed transfer can splice two different versions of a file: start
                    # over once from scratch before declaring the source bad.
                    part.unlink(missing_ok=True)
                    if resumed and attempt < retries:
                        attempt += 1
                        continue
                    raise
            publish(part, dest)
            return
        except _Retryable as err:
            last_error = str(err)
            unanswered = unanswered + 1 if err.connect else 0
        # A host that never answers twice in a row is down or firewalled: waiting out the
        # timeout several more times would only delay the next source.
        if attempt >= retries or unanswered >= 2:
            raise SourceFailed(f"gave up after {attempt + 1} attempts; last: {last_error}")
        time.sleep(backoff_s * 2**attempt)
        attempt += 1


def _transfer(url: str, part: Path, timeout_s: float, progress: bool, desc: str) -> None:
    """One HTTP request appending to (or restarting) `part`. Raises _Retryable or SourceFailed."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": f"mcbits/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if response.status == 206:
                if not offset or _range_start(response) != offset:
                    part.unlink(missing_ok=True)
                    raise _Retryable("server answered with a range that was not asked for")
                mode, start = "ab", offset
            else:  # 200: the server ignores Range, so the transfer starts over
                mode, start = "wb", 0
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            part.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to keep
            with open(part, mode) as out, byte_progress(total, desc, progress) as bar:
                bar.update(start)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return  # nothing left to send: the partial file may be whole; the checksum decides
        if err.code in _RETRY_HTTP:
            raise _Retryable(_describe_url_error(err)) from err
        raise SourceFailed(_describe_url_error(err)) from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, socket.gaierror):
            # The host name does not resolve: offline machine, no point in retrying.
            raise SourceFailed(_describe_url_error(err)) from err
        raise _Retryable(_describe_url_error(err), connect=True) from err
    except (http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
        raise _Retryable(_describe_url_error(err)) from err
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retryable(f"transfer broke off at {size} of {total} bytes")


def _range_start(response: http.client.HTTPResponse) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    # "bytes START-END/TOTAL"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None
