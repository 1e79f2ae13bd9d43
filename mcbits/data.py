"""Prepared data sets: fixed binarizations of test sets, stored compactly, and grayscale train sets.

File formats (written by the prepare stage, read by every later stage):

- binarized set (`.npz`): `packed` = np.packbits of the (n, 784) 0/1 images along axis 1 (shape
  (n, 98)), `labels` (n,), `index` (n,) the images' positions in the source file, and `meta`, a JSON
  string (dataset, display_name, seed, num_images, subset flag, source checksums). Images are
  upright (EMNIST's stored transpose already undone) and stored in a seeded random order, so the
  first k images are a uniform random sample of the test set: later stages take a prefix.
- grayscale set (`.npz`): `images` uint8 (n, 784) upright, `labels` (n,), `meta` as above.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mcbits.errors import McbitsError

NUM_PIXELS = 784


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        raise ValueError(f"images must be uint8 of shape (n, {NUM_PIXELS}), got {images.dtype} {images.shape}")
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
            remedy="run the prepare stage first (dvc repro prepare)",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise McbitsError(
                    f"prepared data file {path} lacks {', '.join(missing)}",
                    where=str(path),
                    remedy="delete it and rerun the prepare stage (dvc repro -f prepare)",
                )
            return {k: npz[k] for k in keys}
    except (OSError, ValueError) as err:
        raise McbitsError(
            f"prepared data file {path} is unreadable ({err})",
            where=str(path),
            remedy="delete it and rerun the prepare stage (dvc repro -f prepare)",
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
        raise ValueError(f"images must be uint8 of shape (n, {NUM_PIXELS}), got {images.dtype} {images.shape}")
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
