"""Data sets: binarization, order, orientation, the letters subset and the prepared-file formats."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from conftest import (
    EMNIST_TEST_FILES,
    LETTERS_SUBSET_FILES,
    build_mirror_from,
    fixture_artifact,
    fixture_images,
    use_fixture_dataset,
    write_emnist_fixture,
)

from mcbits.data import datasets, fetch, idx, registry
from mcbits.errors import McbitsError

# ---------------------------------------------------------------------------------------------
# binarize / shuffled_order


def _gray(n: int = 4) -> np.ndarray:
    return (np.arange(n * 784) % 256).astype(np.uint8).reshape(n, 784)


def test_binarize_is_deterministic_and_seeded():
    gray = _gray()
    a, b = datasets.binarize(gray, 42), datasets.binarize(gray.copy(), 42)
    assert a.dtype == np.uint8 and a.shape == gray.shape
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0, 1}
    assert not np.array_equal(a, datasets.binarize(gray, 43))


def test_binarize_pinned_bits():
    # The same seed must give the same bits on every machine (numpy's PCG64 stream, integer
    # comparison). A change here means prepared test sets would differ from earlier runs.
    bits = datasets.binarize(_gray(), 42)
    digest = hashlib.sha256(np.packbits(bits)).hexdigest()
    assert digest == "9dc3b51719b7224921f308f1460d3e64f4d295a2d87664792b5be65ba5eb1049"


def test_binarize_probabilities():
    assert datasets.binarize(np.zeros((3, 784), np.uint8), 0).sum() == 0
    assert datasets.binarize(np.full((3, 784), 255, np.uint8), 0).all()
    # Bernoulli(pixel/255): 200,704 draws at 51/255 = 0.2; the standard error is 0.0009.
    bits = datasets.binarize(np.full((256, 784), 51, np.uint8), 7)
    assert abs(bits.mean() - 0.2) < 0.005


def test_binarize_rejects_bad_input():
    with pytest.raises(ValueError):
        datasets.binarize(np.zeros((2, 28, 28), np.uint8), 0)
    with pytest.raises(ValueError):
        datasets.binarize(np.zeros((2, 784), np.float32), 0)


def test_shuffled_order():
    order = datasets.shuffled_order(1000, 42)
    assert order.dtype == np.int64
    assert sorted(order.tolist()) == list(range(1000))
    np.testing.assert_array_equal(order, datasets.shuffled_order(1000, 42))
    assert not np.array_equal(order, datasets.shuffled_order(1000, 43))
    assert not np.array_equal(order, np.arange(1000))
    # A prefix is a sample: its positions spread over the whole set.
    assert order[:100].max() > 800 and order[:100].min() < 200


# ---------------------------------------------------------------------------------------------
# Data set registry and orientation


def test_known_datasets():
    assert list(datasets.DATASETS) == ["emnist-mnist", "emnist-letters", "mnist", "fashion-mnist"]
    assert datasets.get_dataset("emnist-letters").test.count == 20800
    assert datasets.get_dataset("emnist-mnist").train.count == 60000
    assert datasets.get_dataset("emnist-letters").subset_display_name == "EMNIST Letters (a-s, 14,800)"
    for info in datasets.DATASETS.values():
        assert info.display_name
        for files in (info.test, info.train):
            assert files.images in registry.REGISTRY[files.artifact].files
            assert files.labels in registry.REGISTRY[files.artifact].files
    with pytest.raises(McbitsError, match="unknown data set 'emnist-digits'") as err:
        datasets.get_dataset("emnist-digits")
    assert "emnist-mnist" in err.value.remedy


def _fetched(path, name="x"):
    return fetch.FetchedFile(name, path, "", "", "")


@pytest.mark.parametrize("dataset_id,transposed", [("emnist-mnist", True), ("mnist", False)])
def test_read_split_orientation(tmp_path, dataset_id, transposed):
    # An image with one lit pixel at row 2, column 5 (upright).
    upright = np.zeros((1, 28, 28), np.uint8)
    upright[0, 2, 5] = 200
    stored = upright.transpose(0, 2, 1) if transposed else upright
    idx.write_images(tmp_path / "i.gz", stored)
    idx.write_labels(tmp_path / "l.gz", np.array([3]))
    split = datasets.FetchedSplit(
        dataset_id,
        "test",
        "x",
        False,
        1,
        transposed,
        _fetched(tmp_path / "i.gz"),
        _fetched(tmp_path / "l.gz"),
    )
    images, labels = datasets.read_split(split)
    assert images.shape == (1, 784) and labels.tolist() == [3]
    assert images[0, 2 * 28 + 5] == 200 and images.sum() == 200


def test_read_split_checks_counts(tmp_path):
    images, labels = fixture_images(3, 0)
    idx.write_images(tmp_path / "i.gz", images)
    idx.write_labels(tmp_path / "l.gz", labels)
    split = datasets.FetchedSplit(
        "mnist",
        "test",
        "MNIST",
        False,
        10000,
        False,
        _fetched(tmp_path / "i.gz"),
        _fetched(tmp_path / "l.gz"),
    )
    with pytest.raises(McbitsError, match="holds 3 images; expected 10000"):
        datasets.read_split(split)


# ---------------------------------------------------------------------------------------------
# fetch_split and the letters subset (generated files, registry checksums overridden)


@pytest.fixture
def letters_fixture(tmp_path, monkeypatch):
    """Generated letters test files (full and subset), registry entries that match them."""
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    originals = tmp_path / "originals"
    originals.mkdir()
    full = write_emnist_fixture(originals, "letters", "test", 5, seed=1)
    subset_imgs, subset_labels = fixture_images(5, seed=2)
    subset = [originals / LETTERS_SUBSET_FILES[0], originals / LETTERS_SUBSET_FILES[1]]
    idx.write_images(subset[0], subset_imgs.transpose(0, 2, 1))
    idx.write_labels(subset[1], subset_labels)
    monkeypatch.setitem(registry.REGISTRY, "emnist", fixture_artifact(registry.REGISTRY["emnist"], full))
    monkeypatch.setitem(
        registry.REGISTRY,
        "emnist-letters-test-subset",
        fixture_artifact(registry.REGISTRY["emnist-letters-test-subset"], subset),
    )
    use_fixture_dataset(monkeypatch, "emnist-letters", test_count=5)
    return full, subset


def _mirror(root, files):
    (root / "emnist").mkdir(parents=True)
    for p in files:
        (root / "emnist" / p.name).write_bytes(p.read_bytes())
    return root


def test_full_letters_test_set_preferred(letters_fixture, tmp_path):
    full, subset = letters_fixture
    mirror = _mirror(tmp_path / "m", full + subset)
    split = datasets.fetch_split("emnist-letters", "test", tmp_path / "d", mirror=mirror, progress=False)
    assert not split.subset and split.display_name == "EMNIST Letters"
    assert split.images.name == "emnist-letters-test-images-idx3-ubyte.gz"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(p.name for p in full)


def test_letters_subset_used_only_as_named_stand_in(letters_fixture, tmp_path):
    full, subset = letters_fixture
    mirror = _mirror(tmp_path / "m", subset)
    split = datasets.fetch_split("emnist-letters", "test", tmp_path / "d", mirror=mirror, progress=False)
    assert split.subset
    assert split.display_name == "EMNIST Letters (a-s, 14,800)"
    assert split.images.name == LETTERS_SUBSET_FILES[0]
    assert any("emnist-letters-test-images-idx3-ubyte.gz" in note for note in split.notes)
    images, _ = datasets.read_split(split)
    assert images.shape == (5, 784)


def test_no_letters_test_set_at_all(letters_fixture, tmp_path):
    with pytest.raises(McbitsError) as err:
        datasets.fetch_split("emnist-letters", "test", tmp_path / "d", mirror=tmp_path, progress=False)
    message = str(err.value)
    assert "neither the full EMNIST Letters test set nor its named subset" in message
    assert LETTERS_SUBSET_FILES[0] in message and "emnist-letters-test-images" in message


def test_emnist_training_set_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    with pytest.raises(McbitsError) as err:
        datasets.fetch_split("emnist-mnist", "train", tmp_path / "d", progress=False)
    message = str(err.value)
    assert "EMNIST MNIST training set is not available" in message
    assert "emnist-mnist-train-images-idx3-ubyte.gz" in message
    assert "prepare.train_data: false" in message


def test_unknown_part(tmp_path):
    with pytest.raises(McbitsError, match="unknown part"):
        datasets.fetch_split("mnist", "validation", tmp_path)


# ---------------------------------------------------------------------------------------------
# Prepared-file formats (the functions the later stages read with)


def test_binarized_round_trip(tmp_path):
    bits = datasets.binarize(_gray(5), 1)
    meta = {"dataset": "x", "subset": False}
    datasets.save_binarized(tmp_path / "t.npz", bits, np.arange(5), np.array([4, 3, 2, 1, 0]), meta)
    images, labels, back = datasets.load_binarized(tmp_path / "t.npz")
    np.testing.assert_array_equal(images, bits)
    assert labels.tolist() == [0, 1, 2, 3, 4] and back["index"].tolist() == [4, 3, 2, 1, 0]
    assert back["dataset"] == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]  # no temporary left


def test_load_missing_prepared_file(tmp_path):
    with pytest.raises(McbitsError, match="prepare the data set first"):
        datasets.load_binarized(tmp_path / "nope.npz")


# ---------------------------------------------------------------------------------------------
# The real test sets (mirror)


@pytest.mark.mirror
def test_real_emnist_mnist_test_set(real_mirror, tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    mirror = build_mirror_from(real_mirror, tmp_path / "m", emnist=EMNIST_TEST_FILES)
    split = datasets.fetch_split("emnist-mnist", "test", tmp_path / "d", mirror=mirror, progress=False)
    assert split.images.verified_by == "md5:fb51b6430fc4dd67deaada1bf25d4524"  # NIST's MD5
    assert split.labels.verified_by == "md5:ae7f6be798a9a5d5f2bd32e078a402dd"
    images, labels = datasets.read_split(split)
    assert images.shape == (10000, 784)
    assert np.bincount(labels).tolist() == [1000] * 10


@pytest.mark.mirror
def test_real_letters_subset(real_mirror, tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    split = datasets.fetch_split("emnist-letters", "test", tmp_path / "d", mirror=real_mirror, progress=False)
    assert split.subset and split.display_name == "EMNIST Letters (a-s, 14,800)"
    images, labels = datasets.read_split(split)
    assert images.shape == (14800, 784)
    assert np.bincount(labels)[1:].tolist() == [800] * 18 + [400]
