"""Where a command may write: one rule for every output of the CLI (the OUT of `mcbits encode` and
`mcbits decode`, the --dest of every `mcbits fetch` subcommand). No output ever replaces what the
user did not ask to replace.

- OUT must name something of its own: `.`, `..`, `/` and the empty path are refused.
- OUT is never an input: not an input file, the checkpoint, the bitstream, a mirror or the
  download cache, nor a folder holding one of them. Paths are compared resolved (symbolic links,
  `..`) and by identity (hard links).
- OUT is never a device node, FIFO or socket (nor a link to one); a file output is never a
  symbolic link or a folder, a folder output never a file.
- An existing file, or a non-empty folder, is refused unless the command is given --force (an
  empty folder is filled: nothing in it can be lost). With --force a file OUT is replaced; in a
  folder only the files the command itself writes there are replaced, each only when it is a
  regular file that looks like what the command writes (`check_replaceable`); every other file
  in the folder is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mcbits.atomic import atomic_folder, os_error, publish, temporary_folder
from mcbits.errors import McbitsError

FORCE_FLAG = "--force"

_SPECIAL = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def _special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is ("a socket", ...), or None for a file or folder."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, name in _SPECIAL:
        if test(mode):
            return name
    return "a special file"


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_inputs(out: Path, inputs: Iterable[tuple[str, str | os.PathLike]], label: str) -> None:
    """OUT may not be an input, nor a folder holding one (resolved paths and hard links)."""
    real = out.resolve()
    for what, raw in inputs:
        path = Path(raw)
        real_input = path.resolve()
        if real_input == real or _same(out, path):
            raise McbitsError(f"{label} {out} is the {what} itself: writing it would destroy the input",
                              where=str(out), remedy=f"choose another {label}")
        if real in real_input.parents:
            raise McbitsError(f"{label} {out} is a folder holding the {what} {path}: writing it could "
                              "destroy the input", where=str(out), remedy=f"choose another {label}")


def check_output(
    out: str | os.PathLike,
    *,
    kind: str,
    inputs: Iterable[tuple[str, str | os.PathLike]] = (),
    force: bool = False,
    label: str = "OUT",
    example: str = "",
    ours: str = "",
) -> Path:
    """Refuse an output path that breaks the module's rule; return it as a Path.

    kind: "file" or "folder" (what the command will write at `out`). inputs: (what, path) of
    everything the command reads (input files and folders, checkpoint, bitstream, mirrors). label:
    how the command calls the output ("OUT", "--dest"). example: a good new name, for the remedy.
    ours: which files the command writes into a folder, for the remedy (e.g. "NNNN-label-L.png").
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', not {kind!r}")
    text = os.fspath(out)
    path = Path(text)
    new = f"name a new {kind}" + (f", e.g. {example}" if example else "")
    if path.name in ("", ".", ".."):
        here = " (it is the current folder)" if text and path.resolve() == Path.cwd().resolve() else ""
        raise McbitsError(f"{label} {text!r} names no {kind} of its own{here}", where=text or "(empty)",
                          remedy=new)
    _refuse_inputs(path, inputs, label)
    if path.is_symlink() and (kind == "file" or not path.is_dir()):
        raise McbitsError(f"{label} {path} is a symbolic link: mcbits does not write through one",
                          where=str(path), remedy=f"{new}, or name the file the link points to")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path  # nothing there yet: nothing to lose
    except OSError as err:
        raise os_error(err, path, "check") from err
    special = _special_kind(mode)
    if special:
        raise McbitsError(f"{label} {path} is {special}, not a regular file: mcbits never writes over "
                          "one", where=str(path), remedy=new)
    if kind == "file" and stat.S_ISDIR(mode):
        raise McbitsError(f"{label} {path} is a folder; this command writes a file", where=str(path),
                          remedy=new)
    if kind == "folder" and not stat.S_ISDIR(mode):
        raise McbitsError(f"{label} {path} is a file; this command writes a folder", where=str(path),
                          remedy=f"{new} (the file is left as it is)")
    if kind == "file" and not force:
        raise McbitsError(f"{label} {path} already exists", where=str(path),
                          remedy=f"{new}, or pass {FORCE_FLAG} to replace it")
    if kind == "folder" and not force:
        try:
            entries = sorted(os.listdir(path))
        except OSError as err:
            raise os_error(err, path, "read") from err
        if entries:
            mine = f" ({ours})" if ours else ""
            raise McbitsError(
                f"{label} {path} already exists and is not empty ({len(entries)} "
                f"{'entry' if len(entries) == 1 else 'entries'}, e.g. {entries[0]})", where=str(path),
                remedy=f"{new}, or pass {FORCE_FLAG} to replace only the files mcbits writes there"
                f"{mine}; every other file is kept")
    return path


def check_replaceable(
    folder: str | os.PathLike,
    names: Iterable[str],
    looks_ours: Callable[[Path], bool] = lambda path: True,
    what: str = "a file mcbits writes",
) -> None:
    """Before writing `names` into an existing `folder`: each one already there must be a regular
    file (no link, folder or device) that `looks_ours`; otherwise refuse, even with --force."""
    folder = Path(folder)
    for name in names:
        path = folder / name
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError as err:
            raise os_error(err, path, "check") from err
        if stat.S_ISLNK(mode):
            found = "a symbolic link"
        elif stat.S_ISDIR(mode):
            found = "a folder"
        else:
            found = _special_kind(mode) or ("" if looks_ours(path) else "a file mcbits did not write")
        if found:
            raise McbitsError(
                f"{path} is {found}, not {what}: mcbits replaces only its own outputs, even with "
                f"{FORCE_FLAG}", where=str(path),
                remedy="choose another output folder, or move that entry away")


@contextlib.contextmanager
def files_into_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty scratch folder to fill with files, then move them into `folder`.

    A missing `folder` is installed whole and atomically (`atomic_folder`). Into an existing one
    (checked by `check_output` / `check_replaceable` first) each file is renamed in place,
    replacing a file of the same name; nothing else in the folder is touched. A failure leaves
    the files not yet moved out of it; a killed process's scratch folder is removed by the next
    call for the same folder.
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        with atomic_folder(folder) as tmp:
            yield tmp
        return
    with temporary_folder(folder / folder.resolve().name) as tmp:  # inside: the same file system
        yield tmp
        try:
            files = sorted(p for p in tmp.iterdir() if p.is_file() and not p.is_symlink())
            for file in files:
                with open(file, "rb") as f:
                    os.fsync(f.fileno())
            for file in files:
                publish(file, folder / file.name)
        except OSError as err:
            raise os_error(err, folder) from err
