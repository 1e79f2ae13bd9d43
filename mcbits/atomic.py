"""Writing files and folders so that a reader never sees half of one: a temporary name beside the
target, flushed to disk, then renamed over it. `atomic_folder` is the one way a stage installs a
whole folder.

- Temporaries are named `.mcbits-tmp-<name>-<pid>-<random><suffix>` beside the target `<name>`:
  recognizable, and tied to the process that writes them. A process killed mid-write leaves its
  temporary behind; the next write of the same target removes every temporary of it whose process
  is gone (`remove_stale_temporaries`). `temporary_folder` gives a scratch folder named the same
  way, for writers that stage files before moving them.
- Outputs get ordinary permissions: files 0666 and folders 0777 less the umask (mkstemp alone
  makes files 0600 and mkdtemp folders 0700).
- Operating-system failures (a read-only or full file system, missing permissions, a name too
  long) become McbitsError naming the target and what to do; nothing is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mcbits.errors import McbitsError

TMP_PREFIX = ".mcbits-tmp-"
_NAME_CHARS = 80  # of the target's name in a temporary's name (file names have at most 255 bytes)


def _ordinary_mode(mode: int) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def _tmp_prefix(path: Path, pid: int | None = None) -> str:
    return f"{TMP_PREFIX}{path.name[:_NAME_CHARS]}-{os.getpid() if pid is None else pid}-"


def temporary_prefix(path: str | os.PathLike) -> str:
    """The name prefix of this process's temporaries of `path` (for writers that make their own)."""
    return _tmp_prefix(Path(path))


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except OSError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` (files or folders) whose writing process is gone.

    Returns what it removed. Temporaries of live processes (this one included) are kept.
    """
    path = Path(path)
    head = f"{TMP_PREFIX}{path.name[:_NAME_CHARS]}-"
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(head):
            continue
        pid_text = entry.name[len(head):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _process_alive(int(pid_text)):
            continue
        stale = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(stale)
            else:
                stale.unlink()
            removed.append(stale)
        except OSError:
            pass  # someone else's to clean, or already gone
    return removed


def os_error(err: OSError, path: str | os.PathLike, action: str = "write") -> McbitsError:
    """An McbitsError for an OSError on `path`, with a remedy for the usual causes."""
    code = err.errno
    if code in (errno.EROFS,):
        remedy = "the file system is read-only: choose an output on a writable one"
    elif code in (errno.EACCES, errno.EPERM):
        remedy = "check the permissions of the folder (and file), or choose another output"
    elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        remedy = "the disk (or quota) is full: free some space, or choose an output elsewhere"
    elif code == errno.ENAMETOOLONG:
        remedy = "use a shorter file name"
    elif code in (errno.EISDIR, errno.ENOTDIR):
        remedy = "the output names a folder, or a path through a file: give a file path"
    else:
        remedy = "check the output path"
    return McbitsError(f"cannot {action} {path}: {err.strerror or err}", where=str(path), remedy=remedy)


def publish(tmp: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Rename a finished temporary file onto `dest`, with ordinary (umask) permissions."""
    os.chmod(tmp, _ordinary_mode(0o666))
    os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it replaces `path`, on any
    failure it is removed and `path` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise os_error(err, path) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        try:
            # fsync: a kill (or power loss) right after the rename must never leave a short file
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            publish(tmp, path)
        except OSError as err:
            raise os_error(err, path) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_output(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as err:
            raise os_error(err, path) from err


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def temporary_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty scratch folder beside `path`, named as a temporary of `path` (so one left by
    a killed process is removed by the next write of `path`); it is removed on exit."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise os_error(err, path, "create") from err
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path` to fill; on success it replaces `path` (the
    old folder is removed only once the new one is in place), on any failure it is removed and
    `path` is left as it was. Every file in it is flushed to disk before the rename; the folder
    gets ordinary permissions (0777 less the umask)."""
    path = Path(path)
    with temporary_folder(path) as tmp:
        tmp.chmod(_ordinary_mode(0o777))
        yield tmp
        for file in sorted(tmp.rglob("*")):
            if file.is_file() and not file.is_symlink():
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
        old = None
        if path.exists():
            old = path.with_name(f"{_tmp_prefix(path)}old-{time.time_ns()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
