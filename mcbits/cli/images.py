"""Images in and out of the CLI: .npy arrays, PNG files and folders of PNGs.

Reading (`read_images`): a .npy of 0/1 pixels, one or more PNG files, or a folder (its *.png files
in name order). Every image must be 28 x 28. A 1-bit PNG is taken as it is (white = 1). Other PNGs
are converted to 8-bit grayscale (alpha composited onto black) and binarized by one documented
rule: with `threshold` t, a pixel is 1 when its value / 255 >= t; without one, each pixel is 1
with probability value / 255, drawn from numpy's PCG64 seeded with `seed` (the dynamic
binarization the models were trained and evaluated with, reproducible). `invert` first maps v to
255 - v, for dark digits on a light background (the models expect light digits on black).

Writing (`write_png_folder`): 1-bit PNGs named as the originals (or image-00000.png ...), the
folder installed atomically; `write_gray_png_folder` writes 8-bit grayscale PNGs (sample inputs).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mcbits.atomic import atomic_folder
from mcbits.errors import McbitsError

SIDE = 28
PNG_SUFFIX = ".png"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._ -]{1,200}$")


def _pillow():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow is a dependency
        raise McbitsError("PNG support needs Pillow", remedy="pip install pillow") from err
    return Image


def png_files(inputs: list[Path]) -> list[Path]:
    """The PNG files the inputs name: files as given, folders expanded to their *.png (sorted)."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == PNG_SUFFIX and p.is_file())
            if not found:
                raise McbitsError(f"folder {path} holds no .png files", where=str(path),
                                  remedy="point at a folder of 28x28 PNG images, or at the files")
            files.extend(found)
        elif path.suffix.lower() == PNG_SUFFIX:
            files.append(path)
        else:
            raise McbitsError(f"{path} is neither a .png file nor a folder of them", where=str(path),
                              remedy="pass one .npy file, PNG files, or a folder of PNG files")
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise McbitsError(f"two inputs share the file name {dupes[0]}", where="IMAGES",
                          remedy="decoded PNGs are written under their names: rename one of them")
    return files


def _gray_of(image, path: Path) -> np.ndarray:
    Image = _pillow()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def binarize(gray: np.ndarray, *, threshold: float | None, seed: int, invert: bool = False) -> np.ndarray:
    """0/1 images from 8-bit grayscale ones (n, 28, 28) by the module's documented rule."""
    values = gray.astype(np.float64)
    if invert:
        values = 255.0 - values
    if threshold is not None:
        return (values / 255.0 >= threshold).astype(np.uint8)
    rng = np.random.Generator(np.random.PCG64(seed))
    return (rng.random(values.shape) < values / 255.0).astype(np.uint8)


def read_pngs(
    files: list[Path], *, threshold: float | None = None, seed: int = 0, invert: bool = False
) -> np.ndarray:
    """0/1 uint8 images (n, 28, 28) from PNG files."""
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise McbitsError(f"--threshold {threshold} is outside (0, 1]", where="option --threshold",
                          remedy="e.g. --threshold 0.5: pixels at least half white become 1")
    Image = _pillow()
    ones_bit: list[np.ndarray | None] = []
    grays: list[np.ndarray] = []
    for path in files:
        try:
            with Image.open(path) as image:
                image.load()
                if image.format != "PNG":
                    raise McbitsError(f"{path} is a {image.format} image, not a PNG", where=str(path),
                                      remedy="convert it to PNG")
                if image.size != (SIDE, SIDE):
                    raise McbitsError(
                        f"{path} is {image.size[0]}x{image.size[1]} pixels; the models code 28x28",
                        where=str(path), remedy="resize it to 28x28 (e.g. with Pillow) first")
                if image.mode == "1":
                    ones_bit.append((np.asarray(image, dtype=np.uint8) > 0).astype(np.uint8))
                    grays.append(np.zeros((SIDE, SIDE), dtype=np.uint8))
                else:
                    ones_bit.append(None)
                    grays.append(_gray_of(image, path))
        except McbitsError:
            raise
        except OSError as err:
            raise McbitsError(f"cannot read {path} as an image: {err}", where=str(path),
                              remedy="pass 28x28 PNG files") from err
    binary = binarize(np.stack(grays), threshold=threshold, seed=seed, invert=invert)
    for i, bits in enumerate(ones_bit):
        if bits is not None:
            binary[i] = 1 - bits if invert else bits
    return binary


def output_names(names: list[str] | None, count: int) -> list[str]:
    """Safe PNG file names for decoded images: the stored originals, else image-00000.png ..."""
    if names and len(names) == count and all(_SAFE_NAME.match(n) and n not in (".", "..") for n in names) \
            and len(set(names)) == count:
        return [n if n.lower().endswith(PNG_SUFFIX) else n + PNG_SUFFIX for n in names]
    return [f"image-{i:05d}{PNG_SUFFIX}" for i in range(count)]


def write_png_folder(
    folder: str | os.PathLike, images: np.ndarray, names: list[str] | None = None
) -> list[Path]:
    """Write 0/1 images (n, 28, 28) as 1-bit PNGs into `folder` (created or replaced atomically)."""
    Image = _pillow()
    images = np.asarray(images, dtype=np.uint8).reshape(-1, SIDE, SIDE)
    chosen = output_names(names, images.shape[0])
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        for image, name in zip(images, chosen, strict=True):
            gray = Image.fromarray(np.ascontiguousarray(image * 255))
            gray.convert("1", dither=Image.Dither.NONE).save(tmp / name, format="PNG", optimize=True)
    return [folder / n for n in chosen]


def write_gray_png_folder(folder: str | os.PathLike, images: np.ndarray, names: list[str]) -> list[Path]:
    """Write uint8 grayscale images (n, 28, 28) as 8-bit PNGs named `names` into `folder` (created
    or replaced atomically)."""
    Image = _pillow()
    images = np.asarray(images, dtype=np.uint8).reshape(-1, SIDE, SIDE)
    if len(names) != images.shape[0]:
        raise McbitsError(f"{images.shape[0]} images but {len(names)} names", where=str(folder))
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        for image, name in zip(images, names, strict=True):
            gray = Image.fromarray(np.ascontiguousarray(image))  # uint8 (28, 28): mode "L"
            gray.save(tmp / name, format="PNG", optimize=True)
    return [folder / n for n in names]
