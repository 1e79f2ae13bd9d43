"""Every input either read right or refused with a message in the user's terms (no traceback):
PNGs of every bit depth and colour type, damaged PNGs, decompression bombs, text-chunk bombs,
file names of every kind, --device values, .npy headers, artifacts of the wrong size, and the
messages of decode failures, legacy files, special-file checkpoints and unsafe checkpoints.

Fixtures are generated here (PNGs written chunk by chunk, tiny checkpoints, sparse files); none
needs the network, and only the registry-size test needs the artifact mirror.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from coding_doubles import save_tiny_checkpoint
from fuzzing import SHA, base_cases, header_size, reseal
from PIL import Image

from mcbits.cli import images as im
from mcbits.cli import main
from mcbits.cli import png as pngmod
from mcbits.cli.codec import check_device, load_binary_images
from mcbits.coding import bitstream
from mcbits.coding import header as fmt
from mcbits.data import checksums, fetch, registry
from mcbits.data.checksums import SourceFailed
from mcbits.data.registry import Artifact, FileSpec
from mcbits.errors import McbitsError


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch):
    monkeypatch.delenv("MCBITS_TRACEBACK", raising=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _clean_error(result, *needles: str) -> str:
    """The output of a command that must fail with a clean McbitsError mentioning every needle."""
    out = result.output
    assert result.exit_code == 1, out
    assert "error:" in out and "Traceback" not in out, out
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), out
    for needle in needles:
        assert needle in out, (needle, out)
    return out


# ---------------------------------------------------------------------------------------------
# PNGs written chunk by chunk


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered(rows: list[bytes], bpp: int, kinds: list[int]) -> bytes:
    out = bytearray()
    prev = bytes(len(rows[0]))
    for row, kind in zip(rows, kinds, strict=True):
        out.append(kind)
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, prev[i], (a + prev[i]) // 2, _paeth(a, prev[i], c))[kind]
            out.append((x - pred) & 0xFF)
        prev = row
    return bytes(out)


def _png16(samples: np.ndarray, colour: int, *, interlace: bool = False, trns: bytes | None = None,
           filters: tuple[int, ...] = (0,)) -> bytes:
    """A 16-bit PNG of uint16 samples (h, w, channels), rows filtered by `filters` in turn."""
    h, w, channels = samples.shape
    passes = pngmod._ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b""
    for x0, y0, dx, dy in passes:
        part = samples[y0::dy, x0::dx]
        if part.size == 0:
            continue
        rows = [part[r].astype(">u2").tobytes() for r in range(part.shape[0])]
        raw += _filtered(rows, 2 * channels, [filters[r % len(filters)] for r in range(len(rows))])
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, int(interlace))
    extra = _chunk(b"tRNS", trns) if trns is not None else b""
    return (pngmod.SIGNATURE + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _png8(rows: int = 28, *, depth: int = 8, colour: int = 0, value: int = 200, before: bytes = b"",
          after: bytes = b"", trns: bytes | None = None, width: int = 28, height: int = 28) -> bytes:
    """A grayscale PNG whose IDAT holds `rows` rows of `value` (fewer than `height`: truncated)."""
    per_row = (width * depth + 7) // 8
    if depth == 8:
        line = bytes([value]) * per_row
    else:
        line = bytes([0xFF]) * per_row
    raw = b"".join(b"\0" + line for _ in range(rows))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    extra = _chunk(b"tRNS", trns) if trns is not None else b""
    return (pngmod.SIGNATURE + _chunk(b"IHDR", ihdr) + extra + before + _chunk(b"IDAT", zlib.compress(raw))
            + after + _chunk(b"IEND", b""))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# 1. Image input: every bit depth on its own scale, damaged files refused


def test_16_bit_grayscale_is_read_on_its_16_bit_scale(tmp_path):
    background = np.full((28, 28), round(0.015 * 65535), dtype=np.uint16)  # a 1.5% gray background
    Image.fromarray(background).save(tmp_path / "bg.png")
    digit = np.zeros((28, 28), dtype=np.uint16)
    digit[5:20, 10:17] = round(0.31 * 65535)  # a 31% gray digit of 105 pixels
    Image.fromarray(digit).save(tmp_path / "digit.png")
    assert Image.open(tmp_path / "bg.png").mode in ("I;16", "I")
    assert im.read_pngs([tmp_path / "bg.png"], threshold=0.5).sum() == 0
    assert im.read_pngs([tmp_path / "digit.png"], threshold=0.5).sum() == 0
    assert im.read_pngs([tmp_path / "digit.png"], threshold=0.3).sum() == 105
    # the seeded draw: each pixel is 1 with probability v / 65535
    drawn = im.read_pngs([tmp_path / "bg.png"] * 40, seed=3)
    assert abs(drawn.mean() - 0.015) < 0.005
    # a 16-bit image of v * 257 reads exactly as the 8-bit image of v (threshold and draw)
    gray8 = (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)
    Image.fromarray(gray8).save(tmp_path / "g8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    for kwargs in ({"threshold": 0.5}, {"threshold": 0.5, "invert": True}, {"seed": 9}):
        np.testing.assert_array_equal(im.read_pngs([tmp_path / "g16.png"], **kwargs),
                                      im.read_pngs([tmp_path / "g8.png"], **kwargs))


def test_16_bit_colour_alpha_and_transparency_use_the_16_bit_samples(tmp_path):
    top = 65535
    rgb = np.zeros((28, 28, 3), dtype=np.uint16)
    rgb[:14] = round(0.6 * top)  # top half 60% gray, bottom half black
    rgb[14:, :, 0] = top  # bottom half pure red: luma 0.299
    bits = im.read_pngs([_write(tmp_path / "rgb.png", _png16(rgb, 2))], threshold=0.5)[0]
    assert bits[:14].all() and not bits[14:].any()
    assert im.read_pngs([tmp_path / "rgb.png"], threshold=0.29)[0].all()
    # gray + alpha: white at 40% opacity, composited onto black
    la = np.zeros((28, 28, 2), dtype=np.uint16)
    la[..., 0] = top
    la[..., 1] = round(0.4 * top)
    path = _write(tmp_path / "la.png", _png16(la, 4, filters=(1, 2, 3, 4)))
    assert not im.read_pngs([path], threshold=0.5).any() and im.read_pngs([path], threshold=0.39).all()
    rgba = np.concatenate([rgb, np.full((28, 28, 1), top, np.uint16)], axis=2)
    rgba[:7, :, 3] = 0  # fully transparent rows: black
    bits = im.read_pngs([_write(tmp_path / "rgba.png", _png16(rgba, 6, interlace=True))], threshold=0.5)[0]
    assert not bits[:7].any() and bits[7:14].all() and not bits[14:].any()
    # a tRNS colour key on 16-bit RGB and gray: exactly the keyed samples are transparent
    key = np.array([round(0.6 * top), round(0.6 * top), round(0.6 * top)], dtype=">u2").tobytes()
    bits = im.read_pngs([_write(tmp_path / "key.png", _png16(rgb, 2, trns=key))], threshold=0.1)[0]
    assert not bits[:14].any() and bits[14:].all()
    gray = np.full((28, 28, 1), top, dtype=np.uint16)
    gray[0, 0] = top - 1
    bits = im.read_pngs([_write(tmp_path / "gkey.png", _png16(gray, 0, trns=struct.pack(">H", top)))],
                        threshold=0.5)[0]
    assert bits.sum() == 1 and bits[0, 0] == 1


@pytest.mark.parametrize("interlace", [False, True])
def test_own_16_bit_decoder_matches_pillow_for_every_filter(tmp_path, interlace):
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, size=(28, 28, 1), dtype=np.uint16)
    samples[10:20] //= 7  # some structure for the predictors
    data = _png16(samples, 0, interlace=interlace, filters=(0, 1, 2, 3, 4, 4, 3))
    png = pngmod.parse_png(data, (28, 28))
    np.testing.assert_array_equal(pngmod.samples(png)[..., 0], samples[..., 0])
    pillow = np.asarray(Image.open(_write(tmp_path / "p.png", data)))
    np.testing.assert_array_equal(pngmod.samples(png)[..., 0], pillow)
    # and Pillow's own 16-bit files
    Image.fromarray(samples[..., 0]).save(tmp_path / "pil.png")
    png = pngmod.parse_png((tmp_path / "pil.png").read_bytes(), (28, 28))
    np.testing.assert_array_equal(pngmod.samples(png)[..., 0], samples[..., 0])


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_a_gray_transparent_key_is_matched_at_every_bit_depth(tmp_path, depth):
    white = (1 << depth) - 1
    keyed = _write(tmp_path / "k.png", _png8(depth=depth, value=255, trns=struct.pack(">H", white)))
    assert not im.read_pngs([keyed], threshold=0.5).any()  # white is the transparent key: black
    other = _write(tmp_path / "o.png", _png8(depth=depth, value=255, trns=struct.pack(">H", 0)))
    assert im.read_pngs([other], threshold=0.5).all()


def test_a_truncated_png_is_refused_naming_the_file(tmp_path, checkpoint):
    path = _write(tmp_path / "short.png", _png8(rows=10))
    with pytest.raises(McbitsError, match="10 of its 28 rows") as err:
        im.read_pngs([path])
    assert str(path) in str(err.value)
    # even when something set Pillow to fill truncated images with black
    from PIL import ImageFile

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(McbitsError, match="truncated"):
            im.read_pngs([path])
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    result = CliRunner().invoke(main, ["encode", str(path), str(tmp_path / "o.mcb"), "--checkpoint",
                                       str(checkpoint), "--threshold", "0.5"])
    _clean_error(result, "short.png", "truncated")
    assert not (tmp_path / "o.mcb").exists()


@pytest.mark.parametrize("damage", ["crc", "cut", "no-iend", "bad-filter", "extra-data", "not-zlib"])
def test_damaged_pngs_are_refused(tmp_path, damage):
    data = bytearray(_png8())
    if damage == "crc":
        data[40] ^= 1  # inside the IDAT: its CRC no longer matches
    elif damage == "cut":
        data = data[:60]
    elif damage == "no-iend":
        data = data[:-12]
    elif damage == "bad-filter":
        raw = b"".join(b"\x07" + bytes([9]) * 28 for _ in range(28))
        data = bytearray(pngmod.SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                         + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    elif damage == "extra-data":
        raw = b"".join(b"\0" + bytes(28) for _ in range(29))
        data = bytearray(pngmod.SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                         + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    else:
        data = bytearray(pngmod.SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                         + _chunk(b"IDAT", b"not zlib data") + _chunk(b"IEND", b""))
    path = _write(tmp_path / "bad.png", bytes(data))
    with pytest.raises(McbitsError, match="cannot read .*bad.png"):
        im.read_pngs([path])


def test_decompression_bombs_are_refused_before_any_pixel(tmp_path, checkpoint):
    bomb = _write(tmp_path / "bomb.png", _png8(rows=1, width=30000, height=30000)[:33] + _chunk(b"IEND", b""))
    with pytest.raises(McbitsError, match="30000x30000 pixels; the models code 28x28"):
        im.read_pngs([bomb])
    result = CliRunner().invoke(main, ["encode", str(bomb), str(tmp_path / "o.mcb"), "--checkpoint",
                                       str(checkpoint)])
    _clean_error(result, "bomb.png", "30000x30000")
    # another format with a bomb's header, named .png: no Pillow error escapes
    gif = bytearray(b"GIF89a" + struct.pack("<HH", 30000, 30000) + b"\x00\x00\x00" + b";")
    path = _write(tmp_path / "gif.png", bytes(gif))
    with pytest.raises(McbitsError, match="gif.png"):
        im.read_pngs([path])
    # an oversized file is refused unread
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(_png8())
        f.truncate(200 << 20)
    with pytest.raises(McbitsError, match="bytes"):
        im.read_pngs([big])


def _ztxt(size: int) -> bytes:
    z = zlib.compressobj()
    compressed = b"".join(z.compress(bytes(1 << 20)) for _ in range(size >> 20)) + z.flush()
    return _chunk(b"zTXt", b"Comment\0\0" + compressed)


@pytest.mark.parametrize("where", ["zTXt-before", "zTXt-after", "tEXt", "iTXt"])
def test_oversized_text_chunks_are_refused(tmp_path, checkpoint, where):
    if where == "zTXt-before":
        data = _png8(before=_ztxt(200 << 20))  # a 200 MB text, compressed to ~200 kB
    elif where == "zTXt-after":
        data = _png8(after=_ztxt(4 << 20))
    elif where == "tEXt":
        data = _png8(after=_chunk(b"tEXt", b"Comment\0" + b"x" * (2 << 20)))
    else:
        data = _png8(before=_chunk(b"iTXt", b"Comment\0\x01\x00en\0\0" + zlib.compress(bytes(3 << 20))))
    path = _write(tmp_path / "text.png", data)
    start = time.perf_counter()
    with pytest.raises(McbitsError, match="text chunk"):
        im.read_pngs([path])
    assert time.perf_counter() - start < 5
    result = CliRunner().invoke(main, ["encode", str(path), str(tmp_path / "o.mcb"), "--checkpoint",
                                       str(checkpoint)])
    _clean_error(result, "text.png", "text chunk")
    # small text chunks are fine
    fine = _write(tmp_path / "fine.png", _png8(before=_chunk(b"tEXt", b"Comment\0hello")))
    assert im.read_pngs([fine], threshold=0.5).all()


NAMES = ["été-ü.png", "quo\"te's.png", "tab\there.png", "new\nline.png", "x" * 251 + ".png",
         "-dash.png", " spaced .png", ".hidden.png", "日本.png"]


def test_every_name_the_file_system_allows_is_written_back_exactly(tmp_path, checkpoint):
    folder = tmp_path / "in"
    x = (np.random.default_rng(1).random((len(NAMES), 28, 28)) < 0.2).astype(np.uint8)
    im.write_png_folder(folder, x, NAMES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES)
    runner = CliRunner()
    result = runner.invoke(main, ["encode", str(folder), str(tmp_path / "n.mcb"), "--checkpoint",
                                  str(checkpoint)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["decode", str(tmp_path / "n.mcb"), str(tmp_path / "out"), "--checkpoint",
                                  str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert "note:" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(NAMES)
    for name, image in zip(NAMES, x, strict=True):
        np.testing.assert_array_equal(im.read_pngs([tmp_path / "out" / name])[0], image)


def test_names_a_bitstream_cannot_hold_are_refused_at_encode(tmp_path, checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "back\\slash.png")
    result = CliRunner().invoke(main, ["encode", str(folder), str(tmp_path / "o.mcb"), "--checkpoint",
                                       str(checkpoint)])
    _clean_error(result, "cannot be stored", "backslash")
    assert not (tmp_path / "o.mcb").exists()
    odd = tmp_path / "odd"
    odd.mkdir()
    try:
        fd = os.open(os.fsencode(odd) + b"/\xff\xfe.png", os.O_WRONLY | os.O_CREAT)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    os.close(fd)
    with pytest.raises(McbitsError, match="not valid UTF-8"):
        im.png_files([odd])


def test_stored_names_that_cannot_be_written_back_say_so():
    assert im.stored_names_problem(["a.png", "a"], 2) == "two images would both be written as 'a.png'"
    assert "not a plain file name" in im.stored_names_problem(["../evil.png"], 1)
    assert im.output_names(["x" * 255], 1) == ["image-00000.png"]  # .png would pass 255 bytes
    assert im.output_names(["tab\t.png"], 1) == ["tab\t.png"]
    assert im.stored_names_problem(None, 3) is None


# ---------------------------------------------------------------------------------------------
# 2. Option values


BAD_DEVICES = ["tpu", "cuda:99", "meta", "", "  ", "cuda:-1", "mps:7"]
if not torch.cuda.is_available():
    BAD_DEVICES.append("cuda")


@pytest.mark.parametrize("device", BAD_DEVICES)
def test_a_device_that_is_not_here_is_a_clear_error(tmp_path, checkpoint, device):
    with pytest.raises(McbitsError, match="available here: cpu"):
        check_device(device)
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.uint8))
    runner = CliRunner()
    result = runner.invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "o.mcb"), "--checkpoint",
                                  str(checkpoint), "--device", device])
    _clean_error(result, "--device", "available here: cpu")
    assert not (tmp_path / "o.mcb").exists()
    ok = runner.invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "ok.mcb"), "--checkpoint",
                              str(checkpoint)])
    assert ok.exit_code == 0, ok.output
    result = runner.invoke(main, ["decode", str(tmp_path / "ok.mcb"), str(tmp_path / "y.npy"), "--checkpoint",
                                  str(checkpoint), "--device", device])
    out = _clean_error(result, "--device", "available here: cpu")
    assert "resealed" not in out and not (tmp_path / "y.npy").exists()


def test_cpu_device_names_are_numpys():
    assert check_device("cpu") == "cpu" and check_device(" cpu:0 ") == "cpu"


def _npy(header: str, payload: bytes = b"") -> bytes:
    text = header + " " * (128 - 10 - len(header) - 1) + "\n"  # a 128-byte header, as np.save writes
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin-1") + payload


@pytest.mark.parametrize("header,payload,message", [
    ("{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 28, 28), }", bytes(100), "negative dimension"),
    ("{'descr': '|u1', 'fortran_order': False, 'shape': (-5, -28, 28), }", b"", "negative dimension"),
    ("{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904, 28, 28), }", b"",
     "more than a file holds"),
    ("{'descr': '|u1', 'fortran_order': False, 'shape': (2**3, 28, 28), }", b"", "header is damaged"),
    ("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 28, 28.5), }", b"", "header is damaged"),
    ("not a dict", b"", "header is damaged"),
    ("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 28, 28), }", bytes(100), "truncated"),
    ("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 28, 28), }", bytes(800), "longer than"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (1, 28, 28), }", bytes(784 * 8), "Python objects"),
])
def test_npy_headers_are_checked_before_the_data(tmp_path, checkpoint, header, payload, message):
    path = _write(tmp_path / "x.npy", _npy(header, payload))
    with pytest.raises(McbitsError, match=message):
        load_binary_images(path)
    result = CliRunner().invoke(main, ["encode", str(path), str(tmp_path / "o.mcb"), "--checkpoint",
                                       str(checkpoint)])
    _clean_error(result, "x.npy")


# ---------------------------------------------------------------------------------------------
# 3. Sizes before hashing


def _sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        try:
            f.truncate(size)
        except OSError:
            pytest.skip("no sparse files here")
    return path


@pytest.fixture
def no_hashing(monkeypatch):
    """Fail the test if any file is hashed or copied."""

    def refuse(*args, **kwargs):
        raise AssertionError("a file of the wrong size was read")

    monkeypatch.setattr(checksums, "hash_file", refuse)
    monkeypatch.setattr(checksums, "new_hashers", refuse)


def test_a_20_gb_copy_of_a_registered_checkpoint_is_refused_unread(tmp_path, monkeypatch, no_hashing):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    folder = registry.checkpoint_folder("mnist", 1)
    mirror = tmp_path / "mirror"
    _sparse(mirror / "mcbits-checkpoints" / folder / "model.pt", 20 << 30)
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["fetch", "checkpoint", "--split", "mnist", "--num-particles", "1",
                                       "--dest", str(tmp_path / "ckpt"), "--mirror", str(mirror)])
    out = _clean_error(result, f"{20 << 30} bytes", "1703386")
    assert "refused without reading it" in out
    assert time.perf_counter() - start < 5
    # already in the destination, or in the download cache: the same
    spec = registry.get_artifact("mcbits-checkpoints").spec(f"{folder}/model.pt")
    for place in (tmp_path / "dest" / folder / "model.pt", fetch.cache_dir() / "mcbits-checkpoints" / folder
                  / "model.pt"):
        _sparse(place, 20 << 30)
    with pytest.raises(fetch.ArtifactUnavailable) as err:
        fetch.fetch_files("mcbits-checkpoints", [spec.name], tmp_path / "dest", progress=False)
    assert str(err.value).count("1703386") >= 2


def test_streams_and_decompression_stop_at_the_recorded_size(tmp_path):
    payload = b"x" * 1000
    spec = FileSpec("f.bin", (f"sha256:{hashlib.sha256(payload).hexdigest()}",), size=1000)
    assert checksums.size_problem(spec, 1000) is None and "1001 bytes" in checksums.size_problem(spec, 1001)

    class Endless:
        reads = 0

        def read(self, n):
            Endless.reads += 1
            return b"y" * n

    with pytest.raises(SourceFailed, match="bytes"):
        checksums.copy_verified(Endless(), tmp_path / "f.bin", spec, total=None, desc="f", progress=False)
    assert Endless.reads <= 2 and not list(tmp_path.iterdir())
    # a gzip whose content passes the recorded content size is not decompressed to its end
    content = bytes(64 << 20)
    gz = _write(tmp_path / "c.gz", gzip.compress(content, compresslevel=1))
    small = FileSpec("c.gz", ("md5:" + "0" * 32,), (f"sha256:{hashlib.sha256(b'').hexdigest()}",),
                     content_size=1000)
    with pytest.raises(SourceFailed, match="larger than the 1000 bytes"):
        checksums.match_digest(small, gz, {"md5": "1" * 32})
    # and a copy bigger than any gzip of that content is refused by its size
    assert "more than any copy" in checksums.size_problem(small, 10 << 20)


def test_registered_sizes_do_not_refuse_good_copies(tmp_path):
    art = Artifact(name="sized", title="sized", mirror_dir="sized", files={})
    payload = b"abc" * 100
    spec = FileSpec("p.bin", (f"sha256:{hashlib.sha256(payload).hexdigest()}",), size=len(payload))
    src = _write(tmp_path / "m" / "sized" / "p.bin", payload)
    art = dataclasses.replace(art, files={"p.bin": spec})
    got = fetch.fetch_files(art, ["p.bin"], tmp_path / "d", mirror=src.parent.parent, progress=False)
    assert got[0].path.read_bytes() == payload


@pytest.mark.mirror
def test_registry_sizes_match_the_mirror(real_mirror):
    checked = 0
    for art in registry.REGISTRY.values():
        for spec in art.files.values():
            path = real_mirror / art.mirror_dir / spec.name
            if spec.size is not None:
                assert path.stat().st_size == spec.size, spec.name
                checked += 1
            if spec.content_size is not None and path.is_file():
                with gzip.open(path, "rb") as f:
                    assert len(f.read()) == spec.content_size, spec.name
    assert checked == 16  # 6 checkpoints x 2 files, 4 EMNIST test files
    sizes = {spec.size for name, spec in registry.REGISTRY["mcbits-checkpoints"].files.items()
             if name.endswith("model.pt")}
    assert sizes == {1703386}


def test_fetch_checkpoint_into_proc_is_a_clear_error(tmp_path, monkeypatch):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    result = CliRunner().invoke(main, ["fetch", "checkpoint", "--split", "mnist", "--num-particles", "1",
                                       "--dest", "/proc/mcbits-no-such-folder/ckpt", "--mirror", str(mirror)])
    _clean_error(result, "/proc/mcbits-no-such-folder")


# ---------------------------------------------------------------------------------------------
# 4. Messages that tell the truth


def test_decode_failures_speak_of_the_file_not_of_the_coder(tmp_path):
    cases = base_cases(tmp_path / "base", num_images=3)
    seen = []
    for case in cases:
        head = header_size(case.data)
        body = len(case.data) - fmt.CHECK_BYTES - head
        for i in range(0, body, max(1, body // 12)):
            data = bytearray(case.data)
            data[head + i] ^= 1 << (i % 8)
            path = _write(tmp_path / "x.mcb", reseal(bytes(data)))
            try:
                bitstream.decode_from_file(path, case.model(), model_sha256=SHA)
            except McbitsError as err:
                seen.append(str(err))
    assert any("message broke off" in m for m in seen)
    for message in seen:
        assert "Error:" not in message and "Error)" not in message, message
        assert "frequency 0" not in message and "push of" not in message, message


def test_an_internal_error_during_decode_is_not_blamed_on_the_file(tmp_path):
    case = base_cases(tmp_path / "base", num_images=3)[1]  # a rANS file
    path = _write(tmp_path / "x.mcb", case.data)
    model = case.model()
    model.fail_after = 0  # the network "fails" (as a broken device would)
    with pytest.raises(McbitsError, match="inside mcbits") as err:
        bitstream.decode_from_file(path, model, model_sha256=SHA)
    assert "resealed" not in str(err.value) and "edited" not in str(err.value)


@pytest.mark.parametrize("version", [3, 0, 7])
def test_legacy_magic_is_described_truly(tmp_path, checkpoint, version):
    path = _write(tmp_path / "old.mcb", b"MCBITS" + version.to_bytes(2, "little") + bytes(40))
    with pytest.raises(McbitsError) as err:
        bitstream.read_header(path)
    message = str(err.value)
    assert "version 3: this mcbits reads version 3" not in message
    assert '"MCBITS"' in message and f"names version {version}" in message
    result = CliRunner().invoke(main, ["decode", str(path), str(tmp_path / "o.npy"), "--checkpoint",
                                       str(checkpoint)])
    assert "reads version 3: this" not in _clean_error(result, "MCBITS")


def test_a_fifo_checkpoint_is_not_a_regular_file(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    os.mkfifo(tmp_path / "model.pt")  # opening it would block
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "o.mcb"),
                                       "--checkpoint", str(tmp_path / "model.pt")])
    out = _clean_error(result, "FIFO", "not a regular file")
    assert "does not exist" not in out


def test_a_checkpoint_load_error_never_suggests_weights_only_false(tmp_path):
    torch.save({"weights": print}, tmp_path / "model.pt")  # a pickle that names a function
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "o.mcb"),
                                       "--checkpoint", str(tmp_path / "model.pt")])
    out = _clean_error(result, "model.pt", "not a plain PyTorch state dict")
    assert "weights_only" not in out and "trust" not in out and "safe_globals" not in out
    assert "\x1b[" not in out
