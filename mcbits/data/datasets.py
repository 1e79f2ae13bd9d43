"""Prepared data sets: fixed binarizations of test sets, stored compactly, and grayscale train sets.

File formats (written by the prepare stage, read by every later stage):

- binarized set (`.npz`): `packed` = np.packbits of the (n, 784) 0/1 images along axis 1 (shape
  (n, 98)), `labels` (n,), `index` (n,) the images' positions in the source file, and `meta`, a JSON
  string (dataset, display_name, seed, num_images, subset flag, source checksums). Images are
  upright (EMNIST's stored transpose already undone) and stored in a seeded random order, so the
  first k images are a uniform random sample of the test set: later stages take a prefix.
- grayscale set (`.npz`): `images` uint8 (n, 784) upright, `labels` (n,), `meta` as above.

Data sets (`DATASETS`): `emnist-mnist`, `emnist-letters` (NIST's EMNIST splits, stored transposed
in their idx files), `mnist` and `fashion-mnist` (stored upright). `fetch_split` places a split's
verified idx files (through mcbits.data.fetch), `read_split` reads them upright, `binarize` draws
the Bernoulli(pixel/255) bits and `shuffled_order` the seeded order of a stored test set.

The EMNIST letters test set has a recognized stand-in: the mirror's first 14,800 images (classes
a-s). It is used only when the full test files cannot be obtained, and is then named as such
(display name "EMNIST Letters (a-s, 14,800)", `subset` true) in everything derived from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mcbits.data import fetch, idx
from mcbits.atomic import atomic_output
from mcbits.errors import McbitsError, require_keys

NUM_PIXELS = 784


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def save_binarized(
    path: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    meta: dict[str, Any],
) -> None:
    """Store 0/1 images (n, 784) packed 8 pixels a byte, atomically."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != NUM_PIXELS or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n, {NUM_PIXELS}), got {images.dtype} {images.shape}"
        )
    if images.size and images.max() > 1:
        raise ValueError("binarized images must hold only 0 and 1")
    _save_npz_atomic(
        Path(path),
        packed=np.packbits(images, axis=1),
        labels=np.asarray(labels, dtype=np.int64),
        index=np.asarray(index, dtype=np.int64),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )


def _open_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.exists():
        raise McbitsError(
            f"prepared data file {path} does not exist",
            where=str(path),
            remedy="prepare the data set first (save_binarized / save_grayscale write these files)",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            require_keys(npz.files, keys, f"prepared data file {path} lacks", where=str(path),
                         remedy="delete it and prepare the data set again")
            return {k: npz[k] for k in keys}
    except (OSError, ValueError) as err:
        raise McbitsError(
            f"prepared data file {path} is unreadable ({err})",
            where=str(path),
            remedy="delete it and prepare the data set again",
        ) from err


def load_binarized(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (images uint8 (n, 784) of 0/1, labels (n,), meta) from a binarized set file."""
    arrays = _open_npz(Path(path), ("packed", "labels", "index", "meta"))
    images = np.unpackbits(arrays["packed"], axis=1, count=NUM_PIXELS)
    meta = json.loads(str(arrays["meta"]))
    meta["index"] = arrays["index"]
    return images, arrays["labels"], meta


def save_grayscale(
    path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, meta: dict[str, Any]
) -> None:
    """Store grayscale uint8 images (n, 784), atomically."""
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != NUM_PIXELS or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n, {NUM_PIXELS}), got {images.dtype} {images.shape}"
        )
    _save_npz_atomic(
        Path(path),
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )


def load_grayscale(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (images uint8 (n, 784) in 0..255, labels, meta) from a grayscale set file."""
    arrays = _open_npz(Path(path), ("images", "labels", "meta"))
    return arrays["images"], arrays["labels"], json.loads(str(arrays["meta"]))


# --------------------------------------------------------------------------------------------
# Data sets and their raw files


@dataclass(frozen=True)
class SplitFiles:
    """The idx files of one part (train or test) of a data set, as named in the registry."""

    artifact: str
    images: str
    labels: str
    count: int


@dataclass(frozen=True)
class DatasetInfo:
    """A data set the pipeline knows: where its files come from and how its images are stored."""

    id: str
    display_name: str
    test: SplitFiles
    train: SplitFiles
    transposed: bool  # EMNIST stores each image transposed; upright after `.T`
    num_classes: int
    # A named stand-in for the test set, used only when `test` cannot be obtained.
    test_subset: SplitFiles | None = None
    subset_display_name: str | None = None


def _emnist(
    split: str, display: str, n_train: int, n_test: int, n_classes: int, **subset: Any
) -> DatasetInfo:
    def files(part: str, count: int) -> SplitFiles:
        return SplitFiles(
            "emnist",
            f"emnist-{split}-{part}-images-idx3-ubyte.gz",
            f"emnist-{split}-{part}-labels-idx1-ubyte.gz",
            count,
        )

    return DatasetInfo(
        id=f"emnist-{split}",
        display_name=display,
        test=files("test", n_test),
        train=files("train", n_train),
        transposed=True,
        num_classes=n_classes,
        **subset,
    )


def _lecun_layout(artifact: str, display: str) -> DatasetInfo:
    return DatasetInfo(
        id=artifact,
        display_name=display,
        test=SplitFiles(artifact, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
        train=SplitFiles(
            artifact, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000
        ),
        transposed=False,
        num_classes=10,
    )


DATASETS: dict[str, DatasetInfo] = {
    d.id: d
    for d in (
        _emnist("mnist", "EMNIST MNIST", 60000, 10000, 10),
        _emnist(
            "letters",
            "EMNIST Letters",
            124800,
            20800,
            26,
            test_subset=SplitFiles(
                "emnist-letters-test-subset",
                "emnist-letters-test-first14800-images-idx3-ubyte.gz",
                "emnist-letters-test-first14800-labels-idx1-ubyte.gz",
                14800,
            ),
            subset_display_name="EMNIST Letters (a-s, 14,800)",
        ),
        _lecun_layout("mnist", "MNIST"),
        _lecun_layout("fashion-mnist", "Fashion-MNIST"),
    )
}


def get_dataset(dataset_id: str) -> DatasetInfo:
    """The DatasetInfo for an id, or a McbitsError listing the known ids."""
    try:
        return DATASETS[dataset_id]
    except KeyError:
        raise McbitsError(
            f"unknown data set {dataset_id!r}",
            where="dataset",
            remedy=f"use one of: {', '.join(DATASETS)}",
        ) from None


@dataclass(frozen=True)
class FetchedSplit:
    """Verified idx files of one part of a data set, placed on disk."""

    dataset: str
    part: str  # "test" or "train"
    display_name: str
    subset: bool  # True when the named stand-in was used instead of the full test set
    count: int
    transposed: bool
    images: fetch.FetchedFile
    labels: fetch.FetchedFile
    # Why the full set was not used, when `subset` (each source tried and its reason).
    notes: list[str] = field(default_factory=list)


def fetch_split(
    dataset_id: str,
    part: str,
    dest_dir: str | os.PathLike,
    *,
    mirror: str | os.PathLike | None = None,
    progress: bool = True,
) -> FetchedSplit:
    """Place the verified idx files of `part` ("test" or "train") of a data set in `dest_dir`.

    For a test set with a named stand-in (EMNIST letters), the stand-in is used only when the full
    files cannot be obtained from any source; the result then says so (`subset`, `notes`).
    """
    info = get_dataset(dataset_id)
    if part not in ("test", "train"):
        raise McbitsError(
            f"unknown part {part!r}", where="fetch_split", remedy="use 'test' or 'train'"
        )
    files = info.test if part == "test" else info.train
    try:
        images, labels = fetch.fetch_files(
            files.artifact, [files.images, files.labels], dest_dir, mirror=mirror, progress=progress
        )
        return FetchedSplit(
            dataset_id, part, info.display_name, False, files.count, info.transposed, images, labels
        )
    except fetch.ArtifactUnavailable as full_error:
        if part == "train" and info.transposed:
            raise McbitsError(
                f"the {info.display_name} training set is not available: {full_error.what}",
                where=full_error.where,
                remedy=(
                    f"{full_error.remedy}; reproducing from the published checkpoints needs no "
                    "training set (set prepare.train_data: false)"
                ),
            ) from full_error
        if part != "test" or info.test_subset is None:
            raise
        subset = info.test_subset
        try:
            images, labels = fetch.fetch_files(
                subset.artifact,
                [subset.images, subset.labels],
                dest_dir,
                mirror=mirror,
                progress=progress,
            )
        except fetch.ArtifactUnavailable as subset_error:
            raise McbitsError(
                f"neither the full {info.display_name} test set nor its named subset is "
                "available.\n"
                f"full set: {full_error.what}\nsubset: {subset_error.what}",
                where=str(dest_dir),
                remedy=full_error.remedy,
            ) from subset_error
        notes = [f"full test set unavailable: {full_error.name}"] + [
            f"{src}: {why}" for src, why in full_error.tried
        ]
        return FetchedSplit(
            dataset_id,
            part,
            info.subset_display_name or info.display_name,
            True,
            subset.count,
            info.transposed,
            images,
            labels,
            notes,
        )


def read_split(split: FetchedSplit) -> tuple[np.ndarray, np.ndarray]:
    """Read a fetched split: (images uint8 (n, 784) upright, labels int64 (n,)), counts checked."""
    images = idx.read_images(split.images.path, expected_count=split.count)
    labels = idx.read_labels(split.labels.path, expected_count=split.count)
    if split.transposed:
        images = images.transpose(0, 2, 1)
    return np.ascontiguousarray(images).reshape(len(images), NUM_PIXELS), labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Binarization and order


def binarize(gray: np.ndarray, seed: int) -> np.ndarray:
    """Dynamic binarization: bit = 1 with probability pixel/255, drawn with numpy's PCG64(seed).

    Exact in integers (a uniform draw from 0..254 is below `pixel` with probability pixel/255),
    so the same seed gives the same bits on any machine with this numpy version.
    """
    gray = np.asarray(gray)
    if gray.dtype != np.uint8 or gray.ndim != 2 or gray.shape[1] != NUM_PIXELS:
        raise ValueError(
            f"gray must be uint8 of shape (n, {NUM_PIXELS}), got {gray.dtype} {gray.shape}"
        )
    rng = np.random.Generator(np.random.PCG64(seed))
    draws = rng.integers(0, 255, size=gray.shape, dtype=np.uint8)
    return (draws < gray).astype(np.uint8)


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """The seeded random order of a stored test set: a permutation of range(n) (int64).

    Drawn from a stream independent of `binarize`'s for the same seed (SeedSequence spawn key 1),
    so the first k positions are a uniform random sample of the set.
    """
    stream = np.random.SeedSequence(seed, spawn_key=(1,))
    return np.random.Generator(np.random.PCG64(stream)).permutation(n).astype(np.int64)
