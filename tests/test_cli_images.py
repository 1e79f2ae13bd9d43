"""PNG images in and out of the CLI (mcbits.cli.images)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mcbits.cli import images as im
from mcbits.errors import McbitsError


def _binary(n, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28)) < 0.3).astype(np.uint8)


def test_one_bit_pngs_round_trip_with_their_names(tmp_path):
    x = _binary(4)
    files = im.write_png_folder(tmp_path / "out", x, ["seven.png", "two.png", "nine", "one.png"])
    assert [f.name for f in files] == ["seven.png", "two.png", "nine.png", "one.png"]
    assert all(Image.open(f).mode == "1" for f in files)
    back = im.read_pngs(files)
    np.testing.assert_array_equal(back, x)
    # a folder is read in name order
    folder_order = im.png_files([tmp_path / "out"])
    assert [f.name for f in folder_order] == sorted(f.name for f in files)


def test_grayscale_is_binarized_by_threshold_or_a_seeded_draw(tmp_path):
    gray = (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)
    path = tmp_path / "g.png"
    Image.fromarray(gray).save(path)
    by_threshold = im.read_pngs([path], threshold=0.5)[0]
    np.testing.assert_array_equal(by_threshold, (gray / 255.0 >= 0.5).astype(np.uint8))
    a = im.read_pngs([path], seed=1)
    np.testing.assert_array_equal(a, im.read_pngs([path], seed=1))  # reproducible
    assert not np.array_equal(a, im.read_pngs([path], seed=2))
    assert abs(a.mean() - (gray / 255.0).mean()) < 0.05  # each pixel is 1 with probability v / 255
    inverted = im.read_pngs([path], threshold=0.5, invert=True)[0]
    np.testing.assert_array_equal(inverted, ((255 - gray) / 255.0 >= 0.5).astype(np.uint8))


def test_rgba_is_composited_onto_black(tmp_path):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[:14, :, 3] = 255  # top half opaque white, bottom half transparent
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    bits = im.read_pngs([path], threshold=0.5)[0]
    assert bits[:14].all() and not bits[14:].any()


@pytest.mark.parametrize("size", [(27, 28), (56, 56)])
def test_other_sizes_are_refused(tmp_path, size):
    path = tmp_path / "s.png"
    Image.fromarray(np.zeros(size[::-1], dtype=np.uint8)).save(path)
    with pytest.raises(McbitsError, match="28x28"):
        im.read_pngs([path])


def test_bad_inputs_name_the_problem(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(McbitsError, match="no .png files"):
        im.png_files([tmp_path / "empty"])
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(McbitsError, match="neither a .png"):
        im.png_files([tmp_path / "x.jpg"])
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image")
    with pytest.raises(McbitsError, match="cannot read"):
        im.read_pngs([fake])
    with pytest.raises(McbitsError, match="threshold"):
        im.read_pngs([fake], threshold=1.5)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        im.write_png_folder(d, _binary(1), ["same.png"])
    with pytest.raises(McbitsError, match="share the file name"):
        im.png_files([a, b])


def test_unsafe_stored_names_fall_back_to_numbered_ones():
    assert im.output_names(["../evil.png", "b.png"], 2) == ["image-00000.png", "image-00001.png"]
    assert im.output_names(["a.png", "a.png"], 2) == ["image-00000.png", "image-00001.png"]
    assert im.output_names(None, 1) == ["image-00000.png"]
