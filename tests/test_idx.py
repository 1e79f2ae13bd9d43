"""The idx reader/writer on generated files: round trips and every kind of damage."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mcbits.data import idx
from mcbits.errors import McbitsError


def _images(n=5, shape=(28, 28), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte.gz", "imgs-idx3-ubyte"])
def test_images_round_trip_gz_and_plain(tmp_path, name):
    images = _images()
    path = tmp_path / name
    idx.write_images(path, images)
    assert idx.is_gzip(path) == name.endswith(".gz")
    back = idx.read_images(path, expected_count=5)
    assert back.dtype == np.uint8 and back.shape == (5, 28, 28)
    np.testing.assert_array_equal(back, images)


def test_labels_round_trip(tmp_path):
    labels = np.array([0, 9, 3, 255, 1], dtype=np.int64)
    idx.write_labels(tmp_path / "l.gz", labels)
    np.testing.assert_array_equal(idx.read_labels(tmp_path / "l.gz", expected_count=5), labels)


def test_gzip_recognized_by_content_not_name(tmp_path):
    # A decompressed copy that kept its .gz name still reads.
    images = _images(2)
    idx.write_images(tmp_path / "x.gz", images, compress=False)
    np.testing.assert_array_equal(idx.read_images(tmp_path / "x.gz"), images)


def test_header_layout_is_big_endian_magic_and_dims(tmp_path):
    idx.write_images(tmp_path / "i", _images(3), compress=False)
    raw = (tmp_path / "i").read_bytes()
    assert struct.unpack(">IIII", raw[:16]) == (2051, 3, 28, 28)
    assert len(raw) == 16 + 3 * 784
    idx.write_labels(tmp_path / "l", np.arange(4), compress=False)
    assert struct.unpack(">II", (tmp_path / "l").read_bytes()[:8]) == (2049, 4)


def test_bad_magic_names_file_and_both_numbers(tmp_path):
    idx.write_labels(tmp_path / "labels.gz", np.arange(10))
    with pytest.raises(McbitsError) as err:
        idx.read_images(tmp_path / "labels.gz")
    message = str(err.value)
    assert "labels.gz" in message and "2049" in message and "2051" in message
    assert err.value.remedy


def test_garbage_magic(tmp_path):
    (tmp_path / "junk").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(McbitsError, match="magic number"):
        idx.read_labels(tmp_path / "junk")


@pytest.mark.parametrize("cut", [1, 784, 784 * 2 + 5])
def test_truncated_data(tmp_path, cut):
    idx.write_images(tmp_path / "i", _images(3), compress=False)
    raw = (tmp_path / "i").read_bytes()
    (tmp_path / "t").write_bytes(raw[:-cut])
    with pytest.raises(McbitsError) as err:
        idx.read_images(tmp_path / "t")
    message = str(err.value)
    assert "truncated" in message and str(3 * 784) in message and str(3 * 784 - cut) in message


def test_truncated_header(tmp_path):
    (tmp_path / "h").write_bytes(struct.pack(">II", 2051, 3))
    with pytest.raises(McbitsError, match="truncated inside its header"):
        idx.read_images(tmp_path / "h")
    (tmp_path / "e").write_bytes(b"\x00\x00")
    with pytest.raises(McbitsError, match="truncated"):
        idx.read_labels(tmp_path / "e")


def test_trailing_bytes(tmp_path):
    idx.write_labels(tmp_path / "l", np.arange(4), compress=False)
    (tmp_path / "l").write_bytes((tmp_path / "l").read_bytes() + b"\x00")
    with pytest.raises(McbitsError, match="longer than its header says"):
        idx.read_labels(tmp_path / "l")


def test_truncated_gzip_stream(tmp_path):
    idx.write_images(tmp_path / "i.gz", _images(20))
    raw = (tmp_path / "i.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(McbitsError, match="corrupt or truncated gzip") as err:
        idx.read_images(tmp_path / "cut.gz")
    assert "cut.gz" in str(err.value)


def test_corrupt_gzip_stream(tmp_path):
    payload = bytearray(gzip.compress(bytes(5000), mtime=0))
    payload[len(payload) // 2] ^= 0xFF
    (tmp_path / "bad.gz").write_bytes(bytes(payload))
    with pytest.raises(McbitsError, match="corrupt or truncated gzip"):
        idx.read_bytes(tmp_path / "bad.gz")


def test_wrong_count_and_shape(tmp_path):
    idx.write_images(tmp_path / "i", _images(4))
    with pytest.raises(McbitsError) as err:
        idx.read_images(tmp_path / "i", expected_count=10000)
    assert "holds 4 images; expected 10000" in str(err.value)
    idx.write_images(tmp_path / "big", _images(2, shape=(32, 32)))
    with pytest.raises(McbitsError, match="32x32 images; expected 28x28"):
        idx.read_images(tmp_path / "big")
    idx.write_labels(tmp_path / "l", np.arange(3))
    with pytest.raises(McbitsError, match="holds 3 labels; expected 4"):
        idx.read_labels(tmp_path / "l", expected_count=4)


def test_missing_file(tmp_path):
    with pytest.raises(McbitsError, match="does not exist"):
        idx.read_images(tmp_path / "nope.gz")


def test_writer_rejects_bad_arrays(tmp_path):
    with pytest.raises(ValueError):
        idx.write_images(tmp_path / "x", np.zeros((2, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError):
        idx.write_labels(tmp_path / "x", np.array([300]))
