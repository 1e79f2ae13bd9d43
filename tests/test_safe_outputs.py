"""No output replaces what the user did not ask to replace (mcbits.outputs), through the CLI.

Each case builds a scratch folder of the user's files, runs the command, and compares a hash of
the whole folder before and after: refused commands leave every byte as it was, and --force
replaces only the files the command itself writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from coding_doubles import random_binary_images, save_tiny_checkpoint
from conftest import fixture_artifact, fixture_images, tool_env, use_fixture_dataset, write_emnist_fixture
from PIL import Image

from mcbits.cli import main
from mcbits.cli.images import write_gray_png_folder, write_png_folder
from mcbits.data import fetch, registry


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch):
    monkeypatch.delenv("MCBITS_TRACEBACK", raising=False)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny checkpoint and a 3-image bitstream coded with it (in a folder of their own)."""
    folder = tmp_path_factory.mktemp("model")
    checkpoint = save_tiny_checkpoint(folder / "model.pt", seed=0)
    np.save(folder / "a.npy", random_binary_images(3, seed=7).reshape(3, 28, 28))
    result = CliRunner().invoke(main, ["encode", str(folder / "a.npy"), str(folder / "a.mcb"),
                                       "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def work(tmp_path, model, monkeypatch) -> Path:
    """A scratch folder (the current one) holding copies of model.pt, a.npy and a.mcb."""
    for name in ("model.pt", "a.npy", "a.mcb"):
        (tmp_path / name).write_bytes((model / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree(root: Path) -> dict[str, str]:
    """Every entry under `root`: file contents by SHA-256, folders, links and special files."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[rel] = f"link -> {os.readlink(path)}"
            elif stat.S_ISDIR(mode):
                found[rel] = "folder"
            elif stat.S_ISREG(mode):
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[rel] = f"special {stat.S_IFMT(mode):o}"
    return found


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, *needles: str) -> None:
    """Exit 1 with a message (what, where, remedy), no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "error:" in result.output, result.output
    assert "where:" in result.output and "remedy:" in result.output, result.output
    for needle in needles:
        assert needle in result.output, result.output


def user_photos(folder: Path) -> None:
    """A folder of the user's own files, one of them an ordinary (grayscale) PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)))
    Image.fromarray(np.full((40, 30), 77, np.uint8)).save(folder / "cat.png")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "deep.bin").write_bytes(b"\x00\x01")


# ---------------------------------------------------------------------------------------------
# decode: an existing folder, a folder holding the inputs, a file, the checkpoint


def test_decode_into_a_folder_of_other_files_is_refused(work):
    user_photos(work / "photos")
    before = tree(work)
    refused(cli("decode", "a.mcb", "photos/", "--checkpoint", "model.pt"), "already exists", "--force")
    assert tree(work) == before


def test_decode_with_force_replaces_only_the_decoded_pngs(work):
    user_photos(work / "photos")
    write_png_folder(work / "old", random_binary_images(1, seed=1).reshape(1, 28, 28))
    os.replace(work / "old" / "image-00000.png", work / "photos" / "image-00000.png")  # an earlier decode
    before = tree(work / "photos")
    result = cli("decode", "a.mcb", "photos/", "--checkpoint", "model.pt", "--force")
    assert result.exit_code == 0, result.output
    after = tree(work / "photos")
    written = {f"image-{i:05d}.png" for i in range(3)}
    assert set(after) == set(before) | written
    assert {k: v for k, v in after.items() if k not in written} == \
        {k: v for k, v in before.items() if k not in written}
    decoded = np.stack([np.asarray(Image.open(work / "photos" / n).convert("L")) // 255
                        for n in sorted(written)])
    np.testing.assert_array_equal(decoded, np.load(work / "a.npy"))
    assert not [p for p in work.rglob(".mcbits-tmp-*")]


def test_decode_with_force_never_replaces_a_png_mcbits_did_not_write(work):
    # encode the user's grayscale PNGs, decode into their folder: the originals are not ours
    folder = work / "photos"
    write_gray_png_folder(folder, np.full((2, 28, 28), 200, np.uint8), ["p0.png", "p1.png"])
    (folder / "notes.txt").write_text("keep\n")
    assert cli("encode", "photos/", "p.mcb", "--checkpoint", "model.pt").exit_code == 0
    before = tree(work)
    refused(cli("decode", "p.mcb", "photos/", "--checkpoint", "model.pt", "--force"),
            "p0.png", "own outputs")
    assert tree(work) == before


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_decode_into_the_folder_holding_the_bitstream_is_refused(work, force):
    (work / "w").mkdir()
    os.replace(work / "a.mcb", work / "w" / "a.mcb")
    (work / "w" / "neighbour.txt").write_text("next door\n")
    before = tree(work)
    refused(cli("decode", "w/a.mcb", "w", "--checkpoint", "model.pt", *force), "holding the BITSTREAM")
    refused(cli("decode", "w/a.mcb", work, "--checkpoint", "model.pt", *force), "holding the BITSTREAM")
    refused(cli("decode", "w/a.mcb", "w/a.mcb", "--checkpoint", "model.pt", *force), "destroy the input")
    assert tree(work) == before


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_decode_never_turns_a_file_into_a_folder(work, force):
    (work / "report.txt").write_text("quarterly numbers\n")
    before = tree(work)
    refused(cli("decode", "a.mcb", "report.txt", "--checkpoint", "model.pt", *force), "is a file")
    assert tree(work) == before


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_decode_and_encode_never_write_the_checkpoint(work, force):
    (work / "ckpt").mkdir()
    (work / "ckpt" / "model.pt").hardlink_to(work / "model.pt")
    before = tree(work)
    refused(cli("decode", "a.mcb", "model.pt", "--checkpoint", "model.pt", *force), "checkpoint itself")
    refused(cli("decode", "a.mcb", "ckpt", "--checkpoint", "ckpt/model.pt", *force), "holding the checkpoint")
    refused(cli("encode", "a.npy", "model.pt", "--checkpoint", "model.pt", *force), "checkpoint itself")
    refused(cli("encode", "a.npy", "ckpt/model.pt", "--checkpoint", "model.pt", *force), "checkpoint itself")
    assert tree(work) == before


def test_decode_to_an_existing_npy_needs_force(work):
    np.save(work / "out.npy", np.arange(5))
    before = tree(work)
    refused(cli("decode", "a.mcb", "out.npy", "--checkpoint", "model.pt"), "already exists", "--force")
    assert tree(work) == before
    result = cli("decode", "a.mcb", "out.npy", "--checkpoint", "model.pt", "--force")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(work / "out.npy"), np.load(work / "a.npy"))


def test_decode_fills_an_empty_folder(work):
    (work / "empty").mkdir()
    result = cli("decode", "a.mcb", "empty", "--checkpoint", "model.pt")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (work / "empty").iterdir()) == [f"image-{i:05d}.png" for i in range(3)]


# ---------------------------------------------------------------------------------------------
# encode: never an input, an existing OUT only with --force


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_encode_never_overwrites_a_png_it_reads(work, force):
    write_gray_png_folder(work / "in", np.full((3, 28, 28), 120, np.uint8), ["d0.png", "d1.png", "d2.png"])
    (work / "link.png").symlink_to(work / "in" / "d1.png")
    before = tree(work)
    refused(cli("encode", "in/", "in/d0.png", "--checkpoint", "model.pt", *force), "destroy the input")
    refused(cli("encode", "in/", "link.png", "--checkpoint", "model.pt", *force), "destroy the input")
    refused(cli("encode", "in/d2.png", "in/../in/d2.png", "--checkpoint", "model.pt", *force),
            "destroy the input")
    assert tree(work) == before


def test_encode_to_an_existing_file_needs_force(work):
    (work / "old.mcb").write_bytes(b"an earlier bitstream")
    before = tree(work)
    refused(cli("encode", "a.npy", "old.mcb", "--checkpoint", "model.pt"), "already exists", "--force")
    assert tree(work) == before
    result = cli("encode", "a.npy", "old.mcb", "--checkpoint", "model.pt", "--force")
    assert result.exit_code == 0, result.output
    assert (work / "old.mcb").read_bytes() == (work / "a.mcb").read_bytes()


# ---------------------------------------------------------------------------------------------
# Non-regular files and unnamed paths


def _special(work: Path, kind: str, name: str) -> Path:
    path = work / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
        except PermissionError:
            pytest.skip("creating a device node needs privileges")
    else:  # a link to the machine's /dev/null: refused before anything could follow it
        path.symlink_to("/dev/null")
    return path


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "link_to_device"])
@pytest.mark.parametrize("command", ["encode", "decode_npy", "decode_folder"])
def test_a_non_regular_out_is_never_replaced(work, kind, command):
    name = {"encode": "out.mcb", "decode_npy": "out.npy", "decode_folder": "out"}[command]
    path = _special(work, kind, name)
    args = (["encode", "a.npy"] if command == "encode" else ["decode", "a.mcb"]) + \
        [name, "--checkpoint", "model.pt"]
    before = tree(work)
    mode = path.lstat().st_mode
    for force in ([], ["--force"]):
        result = cli(*args, *force)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert tree(work) == before and path.lstat().st_mode == mode


@pytest.mark.parametrize("out", [".", "./", "..", "sub/..", ""])
def test_unnamed_outputs_are_clear_errors(work, out):
    (work / "sub").mkdir()
    before = tree(work)
    result = cli("decode", "a.mcb", out, "--checkpoint", "model.pt")
    refused(result, "names no folder of its own")
    if out in (".", "./"):
        assert "current folder" in result.output
    for command in (["fetch", "digits"], ["fetch", "dataset", "emnist-mnist"],
                    ["fetch", "checkpoint", "--split", "mnist", "--num-particles", "5"]):
        refused(cli(*command, "--dest", out), "--dest", "names no folder of its own")
        refused(cli(*command, "--dest", out, "--force"), "names no folder of its own")
    assert tree(work) == before


# ---------------------------------------------------------------------------------------------
# fetch: digits, dataset, checkpoint


@pytest.fixture
def digits_mirror(tmp_path, monkeypatch) -> Path:
    """A generated EMNIST-mnist test set (12 images) in a mirror, the registry pinned to it."""
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    mirror = tmp_path / "mirror"
    files = write_emnist_fixture(mirror / "emnist", "mnist", "test", 12, seed=3)
    monkeypatch.setitem(registry.REGISTRY, "emnist", fixture_artifact(registry.REGISTRY["emnist"], files))
    use_fixture_dataset(monkeypatch, "emnist-mnist", test_count=12)
    return mirror


def test_fetch_digits_into_a_folder_of_other_files(work, digits_mirror):
    user_photos(work / "photos")
    write_gray_png_folder(work / "old", np.zeros((1, 28, 28), np.uint8), ["0001-label-9.png"])
    os.replace(work / "old" / "0001-label-9.png", work / "photos" / "0001-label-9.png")  # an earlier fetch
    before = tree(work)
    refused(cli("fetch", "digits", "--count", "3", "--dest", "photos/", "--mirror", digits_mirror),
            "already exists", "--force")
    assert tree(work) == before
    before = tree(work / "photos")
    result = cli("fetch", "digits", "--count", "3", "--dest", "photos/", "--mirror", digits_mirror, "--force")
    assert result.exit_code == 0, result.output
    after = tree(work / "photos")
    written = {f"{i:04d}-label-{label}.png" for i, label in enumerate(fixture_images(12, seed=3)[1][:3])}
    assert set(after) == set(before) | written
    assert {k: v for k, v in after.items() if k not in written} == \
        {k: v for k, v in before.items() if k not in written}
    assert not list(work.rglob(".mcbits-tmp-*")) and not list(work.parent.glob(".mcbits-tmp-*"))


def test_fetch_digits_with_force_never_replaces_a_file_it_did_not_write(work, digits_mirror):
    (work / "photos").mkdir()
    labels = fixture_images(12, seed=3)[1]
    for i, make in enumerate((lambda p: p.write_text("not a PNG at all\n"), Path.mkdir)):
        make(work / "photos" / f"{i:04d}-label-{labels[i]}.png")
    before = tree(work)
    for count in ("1", "2"):  # the file, then the folder, in the way
        refused(cli("fetch", "digits", "--count", count, "--dest", "photos", "--mirror", digits_mirror,
                    "--force"), "own outputs")
    assert tree(work) == before


def test_fetch_never_writes_into_its_mirror_or_cache(work, digits_mirror):
    before = tree(digits_mirror)
    for force in ([], ["--force"]):
        refused(cli("fetch", "digits", "--dest", digits_mirror, "--mirror", digits_mirror, *force),
                "mirror itself")
        refused(cli("fetch", "dataset", "emnist-mnist", "--dest", digits_mirror.parent, "--mirror",
                    digits_mirror, *force), "holding the mirror")
        refused(cli("fetch", "digits", "--dest", fetch.cache_dir(), "--mirror", digits_mirror, *force),
                "download cache itself")
    assert tree(digits_mirror) == before


def test_fetch_dataset_into_a_folder_of_other_files(work, digits_mirror):
    user_photos(work / "data")
    before = tree(work)
    refused(cli("fetch", "dataset", "emnist-mnist", "--dest", "data", "--mirror", digits_mirror),
            "already exists", "--force")
    assert tree(work) == before
    before = tree(work / "data")
    result = cli("fetch", "dataset", "emnist-mnist", "--dest", "data", "--mirror", digits_mirror, "--force")
    assert result.exit_code == 0, result.output
    after = tree(work / "data")
    idx_names = {p.name for p in (digits_mirror / "emnist").iterdir()}
    assert set(after) == set(before) | idx_names
    assert {k: after[k] for k in before} == before


@pytest.fixture
def checkpoint_mirror(tmp_path, monkeypatch) -> Path:
    """A mirror holding generated model.pt / train_config.yml for (mnist, 5), the registry pinned."""
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    folder = registry.checkpoint_folder("mnist", 5)
    root = tmp_path / "ckpt-mirror"
    (root / "mcbits-checkpoints" / folder).mkdir(parents=True)
    specs = {}
    for name, data in (("model.pt", b"published weights" * 100), ("train_config.yml", b"split: mnist\n")):
        (root / "mcbits-checkpoints" / folder / name).write_bytes(data)
        specs[f"{folder}/{name}"] = registry.FileSpec(
            f"{folder}/{name}", (f"sha256:{hashlib.sha256(data).hexdigest()}",))
    art = dataclasses.replace(registry.REGISTRY["mcbits-checkpoints"], files=specs, base_urls=())
    monkeypatch.setitem(registry.REGISTRY, "mcbits-checkpoints", art)
    return root


def test_fetch_checkpoint_into_a_folder_of_other_files(work, checkpoint_mirror):
    args = ["fetch", "checkpoint", "--split", "mnist", "--num-particles", "5", "--mirror", checkpoint_mirror]
    (work / "mine").mkdir()
    (work / "mine" / "model.pt").write_bytes(b"the user's own trained model")
    (work / "mine" / "notes.txt").write_text("lr 1e-3\n")
    before = tree(work)
    refused(cli(*args, "--dest", "mine"), "already exists", "--force")
    refused(cli(*args, "--dest", "."), "names no folder")
    assert tree(work) == before
    user_photos(work / "ckpt")
    before = tree(work / "ckpt")
    result = cli(*args, "--dest", "ckpt", "--force")
    assert result.exit_code == 0, result.output
    after = tree(work / "ckpt")
    assert set(after) == set(before) | {"model.pt", "train_config.yml"}
    assert {k: after[k] for k in before} == before
    assert not [p for p in (work / "ckpt").iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# A killed fetch leaves no temporary behind


_BLOCKING_FETCH = """
import sys, time
from pathlib import Path
import mcbits.data.datasets as datasets
from mcbits.cli import main

def fetch_split(dataset_id, part, dest, **kw):
    (Path(dest) / "half-written.idx").write_bytes(b"x" * 1000)
    print("ready", flush=True)
    time.sleep(120)

datasets.fetch_split = fetch_split
sys.exit(main(["fetch", "digits", "--dest", "digits"]))
"""


def _start_blocked_fetch(cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKING_FETCH], cwd=cwd, env=tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    assert [p.name for p in cwd.glob(".mcbits-tmp-digits-*")]  # the scratch folder is beside --dest
    return proc


def test_a_terminated_fetch_removes_its_temporary(tmp_path):
    proc = _start_blocked_fetch(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert "Traceback" not in proc.stderr.read()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_fetchs_temporary_goes_with_the_next_fetch(tmp_path, monkeypatch, digits_mirror):
    work = tmp_path / "w"
    work.mkdir()
    proc = _start_blocked_fetch(work)
    proc.kill()
    proc.wait(timeout=60)
    assert [p.name for p in work.glob(".mcbits-tmp-digits-*")]  # SIGKILL: nothing could run
    monkeypatch.chdir(work)
    result = cli("fetch", "digits", "--count", "2", "--dest", "digits", "--mirror", digits_mirror)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in work.iterdir()) == ["digits"]
