"""The prepare stage, run in-process in a temporary working folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    EMNIST_TEST_FILES,
    build_mirror_from,
    fixture_artifact,
    use_fixture_dataset,
    write_emnist_fixture,
)

from mcbits.data import datasets, fetch, idx, registry
from stages import prepare


def _params(folder: Path, **prepare_block) -> None:
    block = {"seed": 42, "train_data": False, "mirror": None, **prepare_block}
    (folder / "params.yaml").write_text(yaml.safe_dump({"prepare": block}))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def emnist_fixture(tmp_path, monkeypatch):
    """A mirror with generated emnist-mnist test (7 images) and train (9 images) files."""
    mirror = tmp_path / "mirror"
    (mirror / "emnist").mkdir(parents=True)
    files = write_emnist_fixture(mirror / "emnist", "mnist", "test", 7, seed=11)
    files += write_emnist_fixture(mirror / "emnist", "mnist", "train", 9, seed=12)
    monkeypatch.setitem(registry.REGISTRY, "emnist", fixture_artifact(registry.REGISTRY["emnist"], files))
    use_fixture_dataset(monkeypatch, "emnist-mnist", test_count=7, train_count=9)
    return mirror


def test_prepare_test_set(workdir, emnist_fixture):
    _params(workdir, mirror=str(emnist_fixture))
    prepare.main(["--dataset", "emnist-mnist"])
    raw = workdir / "data/raw/emnist-mnist"
    assert sorted(p.name for p in raw.iterdir()) == sorted(EMNIST_TEST_FILES)  # no training files
    out = workdir / "data/prepared/emnist-mnist"
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "test.npz"]
    bits, labels, meta = datasets.load_binarized(out / "test.npz")
    # Rebuild what the file must hold from the raw files: upright, seeded order, seeded bits.
    stored = idx.read_images(raw / EMNIST_TEST_FILES[0])
    upright = stored.transpose(0, 2, 1).reshape(7, 784)
    raw_labels = idx.read_labels(raw / EMNIST_TEST_FILES[1])
    order = datasets.shuffled_order(7, 42)
    np.testing.assert_array_equal(meta["index"], order)
    np.testing.assert_array_equal(labels, raw_labels[order])
    np.testing.assert_array_equal(bits, datasets.binarize(upright[order], 42))
    assert meta["display_name"] == "EMNIST MNIST" and meta["subset"] is False
    assert meta["seed"] == 42 and meta["num_images"] == 7
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["num_images"] == 7 and summary["train"] is None
    assert sum(summary["test"]["label_counts"].values()) == 7
    assert {f["name"] for f in summary["test"]["files"]} == set(EMNIST_TEST_FILES)
    # Where the files came from is in the log (by name, no folder), never in the data nor the
    # details (a mirror and a download give the same verified bytes, so the same outputs).
    assert not any("source" in f for f in summary["test"]["files"])
    assert str(emnist_fixture) not in (out / "summary.json").read_text()
    details = json.loads((workdir / "details/prepare/emnist-mnist.json").read_text())
    assert details["test_files"] == sorted(EMNIST_TEST_FILES) and "test_sources" not in details
    log = json.loads((workdir / "logs/prepare/emnist-mnist.json").read_text())
    assert log["test_sources"] == {name: f"mirror:{name}" for name in EMNIST_TEST_FILES}
    assert log["seconds"] >= 0
    # No temporary folders left beside the outputs.
    assert sorted(p.name for p in (workdir / "data/raw").iterdir()) == ["emnist-mnist"]
    assert sorted(p.name for p in (workdir / "data/prepared").iterdir()) == ["emnist-mnist"]


def test_prepare_is_reproducible_and_replaces_outputs(workdir, emnist_fixture):
    _params(workdir, mirror=str(emnist_fixture))
    prepare.main(["--dataset", "emnist-mnist"])
    first, _, _ = datasets.load_binarized(workdir / "data/prepared/emnist-mnist/test.npz")
    (workdir / "data/raw/emnist-mnist/stale.txt").write_text("from an earlier run")
    prepare.main(["--dataset", "emnist-mnist"])
    again, _, _ = datasets.load_binarized(workdir / "data/prepared/emnist-mnist/test.npz")
    np.testing.assert_array_equal(first, again)
    assert not (workdir / "data/raw/emnist-mnist/stale.txt").exists()
    _params(workdir, mirror=str(emnist_fixture), seed=7)
    prepare.main(["--dataset", "emnist-mnist"])
    other, _, meta = datasets.load_binarized(workdir / "data/prepared/emnist-mnist/test.npz")
    assert meta["seed"] == 7 and not np.array_equal(first, other)


def test_prepare_with_train_data(workdir, emnist_fixture):
    _params(workdir, mirror=str(emnist_fixture), train_data=True)
    prepare.main(["--dataset", "emnist-mnist"])
    out = workdir / "data/prepared/emnist-mnist"
    images, labels, meta = datasets.load_grayscale(out / "train.npz")
    stored = idx.read_images(workdir / "data/raw/emnist-mnist/emnist-mnist-train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(images, stored.transpose(0, 2, 1).reshape(9, 784))
    assert images.max() > 1  # grayscale: training binarizes afresh each epoch
    assert meta["part"] == "train" and len(labels) == 9
    assert json.loads((out / "summary.json").read_text())["train"]["num_images"] == 9


def test_prepare_uses_env_mirror(workdir, emnist_fixture, monkeypatch):
    _params(workdir)
    monkeypatch.setenv(fetch.MIRROR_ENV, str(emnist_fixture))
    prepare.main(["--dataset", "emnist-mnist"])
    assert (workdir / "data/prepared/emnist-mnist/test.npz").exists()


def _fails(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        prepare.main(argv)
    assert exc.value.code == 1
    return capsys.readouterr().err


def test_no_source_fails_cleanly(workdir, capsys):
    # The real registry, an empty mirror and no network: nothing can be had.
    _params(workdir, train_data=True, mirror=str(workdir / "no-mirror"))
    err = _fails(capsys, ["--dataset", "emnist-mnist"])
    assert err.startswith("error in stage") and "emnist-mnist-test-images-idx3-ubyte.gz" in err
    assert "remedy:" in err
    assert not (workdir / "data/prepared/emnist-mnist").exists()
    assert list((workdir / "data/raw").iterdir()) == []  # temporaries removed


def test_training_set_error_names_the_remedy(workdir, emnist_fixture, capsys, monkeypatch):
    # Test files present, training files absent: the error is about training data.
    for name in ("emnist-mnist-train-images-idx3-ubyte.gz", "emnist-mnist-train-labels-idx1-ubyte.gz"):
        (emnist_fixture / "emnist" / name).unlink()
    _params(workdir, mirror=str(emnist_fixture), train_data=True)
    err = _fails(capsys, ["--dataset", "emnist-mnist"])
    assert "EMNIST MNIST training set is not available" in err and "train_data: false" in err
    assert "where: data/raw/emnist-mnist\n" in err  # the output folder, not a temporary one
    assert not (workdir / "data/prepared/emnist-mnist").exists()


@pytest.mark.parametrize(
    "block,needle",
    [
        ({"seed": "x"}, "prepare.seed must be a non-negative integer"),
        ({"seed": True}, "prepare.seed must be a non-negative integer"),
        ({"train_data": "yes"}, "prepare.train_data must be auto, true or false"),
        ({"mirror": 5}, "prepare.mirror must be a folder path or null"),
    ],
)
def test_bad_params(workdir, capsys, block, needle):
    _params(workdir, **block)
    assert needle in _fails(capsys, ["--dataset", "emnist-mnist"])


@pytest.mark.parametrize(("dataset", "setting", "want"), [
    ("emnist-mnist", "auto", False), ("emnist-letters", "auto", False), ("mnist", "auto", True),
    ("fashion-mnist", "auto", True), ("emnist-mnist", True, True), ("mnist", False, False),
])
def test_train_data_auto_prepares_what_source_auto_trains(workdir, monkeypatch, dataset, setting, want):
    # auto: a training set exactly for the data sets without a published checkpoint.
    _params(workdir, train_data=setting)
    seen = {}
    monkeypatch.setattr(prepare, "prepare", lambda dataset_id, **kw: seen.update(kw))
    prepare.main(["--dataset", dataset])
    assert seen["train_data"] is want


def test_unknown_dataset(workdir, capsys):
    _params(workdir)
    err = _fails(capsys, ["--dataset", "digits"])
    assert "unknown data set 'digits'" in err and "grid.datasets" in err


# ---------------------------------------------------------------------------------------------
# The real EMNIST test files from the mirror


@pytest.mark.mirror
def test_prepare_real_emnist_mnist(workdir, real_mirror):
    mirror = build_mirror_from(real_mirror, workdir.parent / "m", emnist=EMNIST_TEST_FILES)
    _params(workdir, mirror=str(mirror))
    prepare.main(["--dataset", "emnist-mnist"])
    summary = json.loads((workdir / "data/prepared/emnist-mnist/summary.json").read_text())
    assert summary["test"]["num_images"] == 10000 and summary["subset"] is False
    assert summary["test"]["label_counts"] == {str(d): 1000 for d in range(10)}
    verified = {f["name"]: f["verified_by"] for f in summary["test"]["files"]}
    assert verified == {
        "emnist-mnist-test-images-idx3-ubyte.gz": "md5:fb51b6430fc4dd67deaada1bf25d4524",
        "emnist-mnist-test-labels-idx1-ubyte.gz": "md5:ae7f6be798a9a5d5f2bd32e078a402dd",
    }
    bits, labels, meta = datasets.load_binarized(workdir / "data/prepared/emnist-mnist/test.npz")
    assert bits.shape == (10000, 784) and meta["display_name"] == "EMNIST MNIST"
    assert 0.05 < bits.mean() < 0.3  # digits are mostly background


@pytest.mark.mirror
def test_prepare_real_emnist_letters_subset(workdir, real_mirror):
    _params(workdir, mirror=str(real_mirror))
    prepare.main(["--dataset", "emnist-letters"])
    out = workdir / "data/prepared/emnist-letters"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["subset"] is True
    assert summary["display_name"] == "EMNIST Letters (a-s, 14,800)"
    assert summary["test"]["num_images"] == 14800
    assert "first 14800 of the 20800 images" in summary["test"]["subset_note"]
    # The sources tried for the full set are in the log, without local folders.
    tried = json.loads((workdir / "logs/prepare/emnist-letters.json").read_text())
    assert tried["full_test_set_sources_tried"]
    assert str(real_mirror) not in json.dumps(tried) + json.dumps(summary)
    _, _, meta = datasets.load_binarized(out / "test.npz")
    assert meta["subset"] is True and meta["display_name"] == "EMNIST Letters (a-s, 14,800)"
    raw = sorted(p.name for p in (workdir / "data/raw/emnist-letters").iterdir())
    assert raw == sorted(
        [
            "emnist-letters-test-first14800-images-idx3-ubyte.gz",
            "emnist-letters-test-first14800-labels-idx1-ubyte.gz",
        ]
    )
