"""`mcbits encode` / `mcbits decode` with PNG files and folders, through the click CLI."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from coding_doubles import save_tiny_checkpoint
from PIL import Image

from mcbits.cli import main
from mcbits.cli.images import write_png_folder


def _digits(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), dtype=np.uint8)
    for img in x:
        r, c = rng.integers(4, 14, size=2)
        img[r:r + 10, c:c + 4] = 1
    return x


def test_a_folder_of_pngs_round_trips_with_names(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "model.pt")
    x = _digits(5)
    names = ["3.png", "1.png", "4.png", "1b.png", "5.png"]
    write_png_folder(tmp_path / "digits", x, names)
    runner = CliRunner()
    enc = runner.invoke(main, ["encode", str(tmp_path / "digits"), str(tmp_path / "d.mcb"),
                               "--checkpoint", str(checkpoint)])
    assert enc.exit_code == 0, enc.output
    assert "5 images" in enc.output and "bits/dim" in enc.output
    dec = runner.invoke(main, ["decode", str(tmp_path / "d.mcb"), str(tmp_path / "back"),
                               "--checkpoint", str(checkpoint)])
    assert dec.exit_code == 0, dec.output
    back = sorted(p.name for p in (tmp_path / "back").iterdir())
    assert back == sorted(names)
    for name in names:
        original = np.asarray(Image.open(tmp_path / "digits" / name).convert("L"))
        decoded = np.asarray(Image.open(tmp_path / "back" / name).convert("L"))
        np.testing.assert_array_equal(original, decoded)
    # the same file also decodes to .npy, in folder (name) order
    dec = runner.invoke(main, ["decode", str(tmp_path / "d.mcb"), str(tmp_path / "y.npy"),
                               "--checkpoint", str(checkpoint)])
    assert dec.exit_code == 0, dec.output
    order = np.argsort(names)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), x[order])


def test_grayscale_pngs_need_a_rule_and_get_the_documented_one(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "model.pt")
    gray = np.zeros((28, 28), dtype=np.uint8)
    gray[5:20, 10:14] = 200
    Image.fromarray(gray).save(tmp_path / "g.png")
    runner = CliRunner()
    enc = runner.invoke(main, ["encode", str(tmp_path / "g.png"), str(tmp_path / "g.mcb"), "--checkpoint",
                               str(checkpoint), "--threshold", "0.5"])
    assert enc.exit_code == 0, enc.output
    dec = runner.invoke(main, ["decode", str(tmp_path / "g.mcb"), str(tmp_path / "g.npy"),
                               "--checkpoint", str(checkpoint)])
    assert dec.exit_code == 0, dec.output
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy")[0], (gray >= 128).astype(np.uint8))


def test_wrong_sizes_and_mixed_inputs_are_clear_errors(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "model.pt")
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(tmp_path / "big.png")
    runner = CliRunner()
    res = runner.invoke(main, ["encode", str(tmp_path / "big.png"), str(tmp_path / "o.mcb"), "--checkpoint",
                               str(checkpoint)])
    assert res.exit_code != 0 and "28x28" in res.output and "Traceback" not in res.output
    np.save(tmp_path / "x.npy", _digits(2))
    res = runner.invoke(main, ["encode", str(tmp_path / "x.npy"), str(tmp_path / "big.png"),
                               str(tmp_path / "o.mcb"), "--checkpoint", str(checkpoint)])
    assert res.exit_code != 0 and "only IMAGES argument" in res.output
    assert not (tmp_path / "o.mcb").exists()


def test_fetch_digits_writes_grayscale_test_images_that_encode(tmp_path, monkeypatch):
    """`mcbits fetch digits`: the first test images as 8-bit PNGs, upright (read_split's
    orientation), named by position and label; `mcbits encode` takes the folder."""
    import mcbits.data.datasets as datasets

    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, size=(12, 784), dtype=np.uint8)
    labels = np.arange(12) % 10

    class Split:
        display_name = "Generated digits"

    seen = {}

    def fake_fetch(dataset_id, part, dest, *, mirror=None, progress=True):
        seen.update(dataset=dataset_id, part=part, mirror=mirror)
        return Split()

    monkeypatch.setattr(datasets, "fetch_split", fake_fetch)
    monkeypatch.setattr(datasets, "read_split", lambda split: (gray, labels))
    runner = CliRunner()
    out = runner.invoke(main, ["fetch", "digits", "--dataset", "emnist-letters", "--count", "4",
                               "--dest", str(tmp_path / "digits")])
    assert out.exit_code == 0, out.output
    assert seen == {"dataset": "emnist-letters", "part": "test", "mirror": None}
    files = sorted((tmp_path / "digits").iterdir())
    assert [f.name for f in files] == [f"{i:04d}-label-{i}.png" for i in range(4)]
    for i, f in enumerate(files):
        with Image.open(f) as image:
            assert image.mode == "L" and image.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(image), gray[i].reshape(28, 28))
    assert "4 Generated digits test images" in out.output
    # more than there are: all of them; an existing folder only with --force (tests/test_safe_outputs.py)
    args = ["fetch", "digits", "--count", "1000", "--dest", str(tmp_path / "digits")]
    assert runner.invoke(main, args).exit_code == 1
    again = runner.invoke(main, [*args, "--force"])
    assert again.exit_code == 0, again.output
    assert len(list((tmp_path / "digits").iterdir())) == 12
    checkpoint = save_tiny_checkpoint(tmp_path / "model.pt")
    enc = runner.invoke(main, ["encode", str(tmp_path / "digits"), str(tmp_path / "d.mcb"),
                               "--checkpoint", str(checkpoint)])
    assert enc.exit_code == 0 and "12 images" in enc.output, enc.output
