"""`mcbits encode` / `mcbits decode`: separate processes round trip; bad inputs exit 1 cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from coding_doubles import random_binary_images, save_tiny_checkpoint
from conftest import tool_env

from mcbits.cli import main
from mcbits.errors import McbitsError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", seed=0)


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt2") / "model.pt", seed=1)


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch):
    monkeypatch.delenv("MCBITS_TRACEBACK", raising=False)


def _mcbits_command() -> list[str]:
    """The installed `mcbits` script beside this interpreter, else the same entry point via -c."""
    script = Path(sys.executable).parent / "mcbits"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from mcbits.cli import main; sys.exit(main())"]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(_mcbits_command() + args, cwd=cwd, env=tool_env(**env), capture_output=True,
                          text=True, timeout=300, check=False)


# ---------------------------------------------------------------------------------------------
# The main path, in two processes


def test_encode_and_decode_in_separate_processes(tmp_path, checkpoint):
    shape = (5, 28, 28)
    images = random_binary_images(shape[0], seed=3).reshape(shape)
    np.save(tmp_path / "images.npy", images)
    # Different thread settings on the two sides: coding runs with one thread whatever they say.
    enc = _run(["encode", "images.npy", "out/images.mcb", "--checkpoint", str(checkpoint),
                "--coder", "ISBitsBackCoder", "--num-particles", "3"], tmp_path, OMP_NUM_THREADS="2")
    assert enc.returncode == 0, enc.stderr
    assert "bits/dim" in enc.stdout
    assert (tmp_path / "out" / "images.mcb").stat().st_size > 0
    dec = _run(["decode", "out/images.mcb", "decoded.npy", "--checkpoint", str(checkpoint)], tmp_path,
               OMP_NUM_THREADS="1")
    assert dec.returncode == 0, dec.stderr
    assert "checksum verified" in dec.stdout
    decoded = np.load(tmp_path / "decoded.npy")
    assert decoded.shape == shape and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)


def test_flat_images_with_every_option_round_trip(tmp_path, checkpoint):
    # In process (the separate-process path is the test above): (n, 784), non-default parameters
    # that the decoder must take from the header.
    images = random_binary_images(4, seed=5)
    np.save(tmp_path / "x.npy", images)
    runner = CliRunner()
    enc = runner.invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "x.mcb"),
                               "--checkpoint", str(checkpoint), "--coder", "BB-CIS", "--num-particles",
                               "2", "--lanes", "2", "--seed", "5", "--lprec", "24", "--bprec", "8",
                               "--log-num-bucket", "6", "--prior-mprec", "7", "--prop-mprec", "14",
                               "--cond-mprec", "14", "--mprec", "8", "--no-whiten-prior"])
    assert enc.exit_code == 0, enc.output
    dec = runner.invoke(main, ["decode", str(tmp_path / "x.mcb"), str(tmp_path / "y.npy"),
                               "--checkpoint", str(checkpoint)])
    assert dec.exit_code == 0, dec.output
    decoded = np.load(tmp_path / "y.npy")
    assert decoded.shape == (4, 784) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)


def test_bool_images_are_accepted(tmp_path, checkpoint):
    images = random_binary_images(3, seed=4).astype(bool).reshape(3, 28, 28)
    np.save(tmp_path / "x.npy", images)
    runner = CliRunner()
    enc = runner.invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "x.mcb"),
                               "--checkpoint", str(checkpoint), "--coder", "BitsBackCoder"])
    assert enc.exit_code == 0, enc.output
    dec = runner.invoke(main, ["decode", str(tmp_path / "x.mcb"), str(tmp_path / "y.npy"),
                               "--checkpoint", str(checkpoint)])
    assert dec.exit_code == 0, dec.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), images.astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Errors: exit 1, a message, no traceback, no output file


def _assert_clean_failure(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for needle in needles:
        assert needle in result.output, result.output


def _write_bad_input(path: Path, kind: str) -> Path:
    if kind == "not_npy":
        path = path.with_suffix(".txt")
        np.savetxt(path, np.zeros((2, 784)))
    elif kind == "garbage_npy":
        path.write_bytes(b"\x93NUMPY but not really")
    elif kind == "pickled_objects":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        arrays = {
            "shape_27x27": np.zeros((3, 27, 27), np.uint8),
            "shape_785": np.zeros((3, 785), np.uint8),
            "one_image_flat": np.zeros(784, np.uint8),
            "no_images": np.zeros((0, 784), np.uint8),
            "four_dims": np.zeros((2, 1, 28, 28), np.uint8),
            "non_binary": np.full((2, 784), 2, np.uint8),
            "negative": -np.ones((2, 784), np.int16),
            "gray_floats": np.full((2, 784), 0.5),
        }
        np.save(path, arrays[kind])
    return path


@pytest.mark.parametrize("kind,needle", [
    ("not_npy", ".npy"),
    ("garbage_npy", "cannot read"),
    ("pickled_objects", "cannot read"),
    ("shape_27x27", "shape"),
    ("shape_785", "shape"),
    ("one_image_flat", "shape"),
    ("no_images", "shape"),
    ("four_dims", "shape"),
    ("non_binary", "0 and 1"),
    ("negative", "0 and 1"),
    ("gray_floats", "0 and 1"),
])
def test_encode_rejects_bad_image_files(tmp_path, checkpoint, kind, needle):
    path = _write_bad_input(tmp_path / "bad.npy", kind)
    out = tmp_path / "out.mcb"
    result = CliRunner().invoke(main, ["encode", str(path), str(out), "--checkpoint", str(checkpoint)])
    _assert_clean_failure(result, needle)
    assert not out.exists()


@pytest.mark.parametrize("options,needle", [
    (["--coder", "ZipCoder"], "unknown coder"),
    (["--coder", "BitsBackCoder", "--num-particles", "3"], "num_particles"),
    (["--coder", "BB-IS", "--num-particles", "0"], "num_particles"),
    (["--bprec", "12"], "bprec"),
    (["--lprec", "40"], "lprec"),
    (["--prop-mprec", "8"], "prop_mprec"),
    (["--coder", "BB-IS", "--num-particles", "50", "--mprec", "5"], "mprec"),
])
def test_encode_rejects_bad_parameters(tmp_path, checkpoint, options, needle):
    np.save(tmp_path / "x.npy", random_binary_images(2))
    out = tmp_path / "out.mcb"
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(out), "--checkpoint",
                                       str(checkpoint), *options])
    _assert_clean_failure(result, needle)
    assert not out.exists()


def test_encode_rejects_a_damaged_checkpoint(tmp_path, checkpoint):
    np.save(tmp_path / "x.npy", random_binary_images(2))
    bad = tmp_path / "model.pt"
    bad.write_bytes(checkpoint.read_bytes()[:-100])  # a truncated download
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "o.mcb"),
                                       "--checkpoint", str(bad)])
    _assert_clean_failure(result, "model.pt")
    assert not (tmp_path / "o.mcb").exists()


@pytest.fixture
def encoded(tmp_path, checkpoint) -> Path:
    np.save(tmp_path / "x.npy", random_binary_images(3, seed=7))
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "x.mcb"),
                                       "--checkpoint", str(checkpoint), "--coder", "BB-IS",
                                       "--num-particles", "2"])
    assert result.exit_code == 0, result.output
    return tmp_path / "x.mcb"


def test_decode_with_another_checkpoint_fails_cleanly(tmp_path, encoded, other_checkpoint):
    out = tmp_path / "y.npy"
    result = CliRunner().invoke(main, ["decode", str(encoded), str(out), "--checkpoint",
                                       str(other_checkpoint)])
    _assert_clean_failure(result, "checkpoint", str(encoded))
    assert not out.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "not_a_bitstream"])
def test_decode_of_a_damaged_file_fails_cleanly(tmp_path, encoded, checkpoint, damage):
    data = encoded.read_bytes()
    if damage == "flip":
        encoded.write_bytes(data[:40] + bytes([data[40] ^ 0x04]) + data[41:])
    elif damage == "truncate":
        encoded.write_bytes(data[: len(data) // 2])
    else:
        encoded.write_bytes((tmp_path / "x.npy").read_bytes())
    out = tmp_path / "y.npy"
    result = CliRunner().invoke(main, ["decode", str(encoded), str(out), "--checkpoint", str(checkpoint)])
    _assert_clean_failure(result, str(encoded))
    assert not out.exists()


def test_traceback_on_request(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setenv("MCBITS_TRACEBACK", "1")
    np.save(tmp_path / "x.npy", np.full((2, 784), 3, np.uint8))
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "o.mcb"),
                                       "--checkpoint", str(checkpoint)])
    assert result.exit_code != 0
    assert isinstance(result.exception, McbitsError)


# ---------------------------------------------------------------------------------------------
# Hostile and odd inputs (issue 13): clear errors, inputs left intact


def test_encode_refuses_to_overwrite_its_input(tmp_path, checkpoint):
    np.save(tmp_path / "x.npy", random_binary_images(2))
    before = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "link.npy").hardlink_to(tmp_path / "x.npy")
    for out in (tmp_path / "x.npy", tmp_path / "link.npy", tmp_path / "sub" / ".." / "x.npy"):
        result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(out),
                                           "--checkpoint", str(checkpoint)])
        _assert_clean_failure(result, "destroy the input")
    assert (tmp_path / "x.npy").read_bytes() == before


def test_decode_refuses_to_overwrite_the_bitstream(tmp_path, encoded, checkpoint):
    before = encoded.read_bytes()
    result = CliRunner().invoke(main, ["decode", str(encoded), str(encoded), "--checkpoint", str(checkpoint)])
    _assert_clean_failure(result, "destroy the input")
    assert encoded.read_bytes() == before


@pytest.mark.parametrize("kind,needle", [
    ("npz_renamed", "zip archive"),
    ("complex", "integers or booleans"),
    ("structured", "integers or booleans"),
    ("scalar", "shape"),
    ("truncated_npy", "cannot read"),
])
def test_encode_rejects_odd_image_files(tmp_path, checkpoint, kind, needle):
    path = tmp_path / "bad.npy"
    if kind == "npz_renamed":
        np.savez(tmp_path / "a.npz", images=random_binary_images(2))
        (tmp_path / "a.npz").rename(path)
    elif kind == "complex":
        np.save(path, np.zeros((2, 784), np.complex64))
    elif kind == "structured":
        np.save(path, np.zeros((2, 784), dtype=[("a", "u1")]))
    elif kind == "scalar":
        np.save(path, np.uint8(1))
    else:
        np.save(path, random_binary_images(5))
        path.write_bytes(path.read_bytes()[:300])
    out = tmp_path / "out.mcb"
    result = CliRunner().invoke(main, ["encode", str(path), str(out), "--checkpoint", str(checkpoint)])
    _assert_clean_failure(result, needle)
    assert not out.exists()


@pytest.mark.parametrize("options,needle", [
    (["--seed", "-1"], "seed"),
    (["--seed", str(2**64)], "seed"),
    (["--coder", "BB-IS", "--num-particles", "1000000", "--mprec", "20"], "num_particles"),
    (["--lanes", "100000000"], "lanes"),
    (["--coder", "BB-IS", "--num-particles", "4096", "--mprec", "20", "--lanes", "65536"], "GiB"),
])
def test_encode_rejects_hostile_parameters(tmp_path, checkpoint, options, needle):
    np.save(tmp_path / "x.npy", random_binary_images(2000, density=0.1))
    out = tmp_path / "out.mcb"
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(out), "--checkpoint",
                                       str(checkpoint), *options])
    _assert_clean_failure(result, needle)
    assert not out.exists()


def test_encode_to_a_read_only_or_full_file_system_is_a_clear_error(tmp_path, checkpoint, monkeypatch):
    import errno
    import os

    np.save(tmp_path / "x.npy", random_binary_images(2))
    for code, needle in ((errno.EROFS, "read-only"), (errno.ENOSPC, "full")):
        def fail(self, data, code=code):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(Path, "write_bytes", fail)
        result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "o" / "x.mcb"),
                                           "--checkpoint", str(checkpoint)])
        monkeypatch.undo()
        _assert_clean_failure(result, "cannot write", needle)
        assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_decode_of_an_earlier_format_version_says_so(tmp_path, checkpoint):
    (tmp_path / "old.mcb").write_bytes(b"MCBITS\x02\x00" + b"\0" * 60)
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "old.mcb"), str(tmp_path / "y.npy"),
                                       "--checkpoint", str(checkpoint)])
    _assert_clean_failure(result, "unsupported bitstream format version 2")


@pytest.mark.parametrize("arithmetic", ["exact", "float"])
def test_decode_reads_iterative_inference_from_the_header(tmp_path, checkpoint, arithmetic):
    # a file the compress stage's iterative-inference runs write: the CLI rebuilds the posterior
    from mcbits.coding import bitstream
    from mcbits.coding.coders import make_coder
    from mcbits.coding.config import CoderConfig
    from mcbits.loading import load_coding_model
    from mcbits.vae.iterative import iterative_posterior

    images = random_binary_images(3, seed=2)
    base, sha, vae = load_coding_model(checkpoint, arithmetic)
    refined = iterative_posterior(base, vae, steps=2, lr=0.05, num_particles=2, seed=3)
    bitstream.encode_to_file(tmp_path / "if.mcb", images, make_coder(refined, CoderConfig(
        coder="ISBitsBackCoder", num_particles=2, seed=3, arithmetic=arithmetic)), model_sha256=sha,
        posterior=refined.settings(), stored=False)
    header = bitstream.read_header(tmp_path / "if.mcb")[0]
    assert header["posterior"] == refined.settings()
    assert header["portable"] is (arithmetic == "exact")
    result = CliRunner().invoke(main, ["decode", str(tmp_path / "if.mcb"), str(tmp_path / "y.npy"),
                                       "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), images)


def test_small_inputs_do_not_grow(tmp_path, checkpoint):
    # one random image: the coded message is larger than its 98 raw bytes, so the file stores those
    np.save(tmp_path / "x.npy", random_binary_images(1, seed=9))
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "x.mcb"),
                                       "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.mcb").stat().st_size <= 98 + 40
    dec = CliRunner().invoke(main, ["decode", str(tmp_path / "x.mcb"), str(tmp_path / "y.npy"),
                                    "--checkpoint", str(checkpoint)])
    assert dec.exit_code == 0, dec.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), random_binary_images(1, seed=9))
