"""Atomic writes: recognizable temporaries, stale ones of dead processes removed, ordinary
permissions, and operating-system failures as clear errors with nothing left behind."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcbits import atomic
from mcbits.errors import McbitsError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_are_named_after_the_target_and_the_process(tmp_path):
    seen = []
    with atomic.atomic_output(tmp_path / "out.mcb") as tmp:
        seen.append(tmp.name)
        tmp.write_bytes(b"x")
    assert seen[0].startswith(f".mcbits-tmp-out.mcb-{os.getpid()}-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mcb"]


def test_a_later_write_removes_stale_temporaries_of_dead_processes(tmp_path):
    dead = _dead_pid()
    stale_file = tmp_path / f".mcbits-tmp-out.mcb-{dead}-abc123.tmp"
    stale_file.write_bytes(b"complete bytes of a killed encode")
    stale_dir = tmp_path / f".mcbits-tmp-out.mcb-{dead}-old-123"
    stale_dir.mkdir()
    (stale_dir / "f").write_bytes(b"")
    live = tmp_path / f".mcbits-tmp-out.mcb-{os.getppid()}-def456.tmp"  # a live process's
    live.write_bytes(b"in progress")
    other = tmp_path / f".mcbits-tmp-other.mcb-{dead}-abc.tmp"  # another target's
    other.write_bytes(b"")
    atomic.write_bytes_atomic(tmp_path / "out.mcb", b"new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["out.mcb", live.name, other.name])
    assert (tmp_path / "out.mcb").read_bytes() == b"new"


def test_stale_temporary_folders_are_removed_by_the_next_install(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".mcbits-tmp-ckpt-{dead}-xyz.tmp"
    stale.mkdir()
    (stale / "model.pt").write_bytes(b"half")
    with atomic.atomic_folder(tmp_path / "ckpt") as folder:
        (folder / "model.pt").write_bytes(b"all")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_ordinary_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic.write_bytes_atomic(tmp_path / "f.bin", b"x")
        with atomic.atomic_folder(tmp_path / "folder") as folder:
            (folder / "model.pt").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize("code,needle", [(errno.EROFS, "read-only"), (errno.ENOSPC, "full"),
                                         (errno.EACCES, "permissions")])
def test_os_errors_become_clear_errors_and_leave_nothing(tmp_path, monkeypatch, code, needle):
    def fail(self, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_bytes", fail)
    with pytest.raises(McbitsError) as err:
        atomic.write_bytes_atomic(tmp_path / "out.mcb", b"data")
    assert "out.mcb" in str(err.value) and needle in err.value.remedy
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(McbitsError, match="cannot write"):
        atomic.write_bytes_atomic(tmp_path / "file" / "out.mcb", b"data")
