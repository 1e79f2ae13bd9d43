"""Images in and out of the CLI: .npy arrays, PNG files and folders of PNGs.

Reading (`read_pngs`): one or more PNG files, or a folder (its *.png files in name order). Every
image must be 28 x 28, and every file whole (mcbits.cli.png checks its chunks, CRCs and image data
before Pillow decodes it: a truncated or damaged file, a header claiming a huge image, or text
chunks of more than 1 MiB are refused). A 1-bit grayscale PNG is taken as it is (white = 1).
Every other PNG is read as gray levels on its own scale, white W = 2^depth - 1 for 16-bit images
(W = 65535, from the file's own samples) and W = 255 for the others (Pillow scales 1/2/4-bit gray
and palettes to 0..255): colour as luma (ITU-R 601-2), alpha and tRNS transparency composited
onto black. Levels v are binarized by one documented rule: with `threshold` t, a pixel is 1 when
v / W >= t; without one, each pixel is 1 with probability v / W, drawn from numpy's PCG64 seeded
with `seed` (the dynamic binarization the models were trained and evaluated with, reproducible).
`invert` first maps v to W - v, for dark digits on a light background (the models expect light
digits on black). File names are stored in the bitstream exactly (UTF-8); a name that cannot be
(not UTF-8, a backslash) is refused at encode (`name_problem`).

Writing (`write_png_folder`): 1-bit PNGs named exactly as the originals (or image-00000.png ...
when the file stores none, or names that cannot be written back: `stored_names_problem`), a new
folder installed atomically; `write_gray_png_folder` writes 8-bit grayscale PNGs (sample inputs).
Into an existing folder only the files of those names are replaced, and only when each is a 28x28
PNG of the mode the writer makes (mcbits.outputs); nothing else there is touched.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from mcbits.atomic import os_error
from mcbits.cli.png import SIGNATURE, Png, PngProblem, parse_png, samples
from mcbits.coding.limits import MAX_NAME_BYTES
from mcbits.errors import McbitsError
from mcbits.outputs import check_replaceable, files_into_folder

SIDE = 28
PNG_SUFFIX = ".png"
MAX_PNG_BYTES = 16 << 20  # a 28x28 PNG has a few kB; larger files are refused unread


def _pillow():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow is a dependency
        raise McbitsError("PNG support needs Pillow", remedy="pip install pillow") from err
    return Image


def _pillow_imagefile():
    from PIL import ImageFile

    return ImageFile


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
    for path in files:
        problem = name_problem(path.name)
        if problem:
            raise McbitsError(f"the file name {path.name!r} cannot be stored in the bitstream: {problem}",
                              where=str(path), remedy="rename the file (decoded PNGs are written under "
                              "their original names)")
    return files


def _refuse(path: Path, what: str, remedy: str = "pass 28x28 PNG files") -> McbitsError:
    return McbitsError(f"cannot read {path}: {what}", where=str(path), remedy=remedy)


def _read_bytes(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_PNG_BYTES (a FIFO is never opened)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, "it is not a regular file")
        if info.st_size > MAX_PNG_BYTES:
            raise _refuse(path, f"it has {info.st_size} bytes; a 28x28 PNG has a few thousand (mcbits "
                          f"reads at most {MAX_PNG_BYTES >> 20} MiB)")
        with open(path, "rb") as f:
            data = f.read(MAX_PNG_BYTES + 1)
    except OSError as err:
        raise os_error(err, path, "read") from err
    if len(data) > MAX_PNG_BYTES:
        raise _refuse(path, f"it has more than {MAX_PNG_BYTES} bytes")
    return data


def _not_png(path: Path, data: bytes) -> McbitsError:
    """The error for a file without the PNG signature: its format when Pillow knows it."""
    Image = _pillow()
    kind = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is simply not a PNG
        pass
    if kind:
        return McbitsError(f"{path} is a {kind} image, not a PNG", where=str(path),
                           remedy="convert it to PNG")
    return _refuse(path, "it is not a PNG file (no PNG signature)")


def _levels(path: Path, data: bytes) -> tuple[np.ndarray | None, np.ndarray, float]:
    """(1-bit pixels or None, gray levels float64 (28, 28), the level of white) of a PNG's bytes.

    Every bit depth and colour type on its own scale: 16-bit images from their 16-bit samples
    (white 65535), the others through Pillow (white 255); colour as luma (ITU-R 601-2), alpha and
    tRNS transparency composited onto black.
    """
    try:
        png = parse_png(data, (SIDE, SIDE))
    except PngProblem as err:
        if err.kind == "size":
            width, height = err.size or (0, 0)
            raise McbitsError(f"{path} is {width}x{height} pixels; the models code 28x28", where=str(path),
                              remedy="resize it to 28x28 (e.g. with Pillow) first") from None
        remedy = ("re-save the image without its text metadata" if err.kind == "text"
                  else "use an intact copy of the image, or save it again as a 28x28 PNG")
        raise _refuse(path, err.detail, remedy) from None
    if png.depth == 16:
        return None, *_levels16(png)
    Image = _pillow()
    ImageFile = _pillow_imagefile()
    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a short image is an error, never rows of black
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                image.load()
                if image.size != (SIDE, SIDE):  # parse_png saw 28x28: Pillow must agree
                    raise _refuse(path, f"Pillow reads it as {image.size[0]}x{image.size[1]} pixels")
                return _levels8(image, png)
    except McbitsError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises many types for a file it cannot read
        raise _refuse(path, f"it is not a readable PNG ({err})",
                      "use an intact copy of the image, or save it again as a 28x28 PNG") from err
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated


def _gray_key(png: Png) -> int | None:
    """A grayscale PNG's transparent level (tRNS), on the file's own scale."""
    if png.colour != 0 or png.trns is None or len(png.trns) < 2:
        return None
    return int.from_bytes(png.trns[:2], "big") & ((1 << png.depth) - 1)


def _levels8(image, png: Png) -> tuple[np.ndarray | None, np.ndarray, float]:
    Image = _pillow()
    key = _gray_key(png)
    if image.mode == "1":
        bits = (np.asarray(image, dtype=np.uint8) > 0).astype(np.uint8)
        if key is not None:
            bits[bits == key] = 0  # the transparent value, composited onto black
        return bits, np.zeros((SIDE, SIDE)), 255.0
    if png.colour == 0:
        # Pillow scales 1/2/4-bit gray to 0..255 but not the tRNS key: match it here
        gray = np.asarray(image.convert("L"), dtype=np.float64)
        if key is not None:
            gray[gray == key * 255 // ((1 << png.depth) - 1)] = 0.0
        return None, gray, 255.0
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return None, np.asarray(image.convert("L"), dtype=np.float64), 255.0


def _levels16(png: Png) -> tuple[np.ndarray, float]:
    values = samples(png).astype(np.float64)
    top = 65535.0
    if png.colour in (0, 4):
        gray = values[..., 0]
    else:
        gray = values[..., 0] * 0.299 + values[..., 1] * 0.587 + values[..., 2] * 0.114
    if png.colour in (4, 6):
        gray = gray * values[..., -1] / top
    elif png.trns is not None:
        channels = 1 if png.colour == 0 else 3
        if len(png.trns) >= 2 * channels:
            key = np.frombuffer(png.trns[:2 * channels], dtype=">u2").astype(np.float64)
            gray = np.where((values == key).all(axis=-1), 0.0, gray)
    return gray, top


def binarize(
    gray: np.ndarray, *, threshold: float | None, seed: int, invert: bool = False,
    top: float | np.ndarray = 255.0,
) -> np.ndarray:
    """0/1 images from grayscale levels (n, 28, 28) whose white is `top` (255 for 8-bit images,
    65535 for 16-bit ones; one value or one per image), by the module's documented rule."""
    values = np.asarray(gray, dtype=np.float64)
    top = np.asarray(top, dtype=np.float64)
    if top.ndim:
        top = top.reshape(-1, *([1] * (values.ndim - 1)))
    if invert:
        values = top - values
    if threshold is not None:
        return (values / top >= threshold).astype(np.uint8)
    rng = np.random.Generator(np.random.PCG64(seed))
    return (rng.random(values.shape) < values / top).astype(np.uint8)


def read_pngs(
    files: list[Path], *, threshold: float | None = None, seed: int = 0, invert: bool = False
) -> np.ndarray:
    """0/1 uint8 images (n, 28, 28) from PNG files."""
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise McbitsError(f"--threshold {threshold} is outside (0, 1]", where="option --threshold",
                          remedy="e.g. --threshold 0.5: pixels at least half white become 1")
    ones_bit: list[np.ndarray | None] = []
    grays: list[np.ndarray] = []
    tops: list[float] = []
    for path in files:
        data = _read_bytes(path)
        if not data.startswith(SIGNATURE):
            raise _not_png(path, data)
        bits, gray, top = _levels(path, data)
        ones_bit.append(bits)
        grays.append(gray)
        tops.append(top)
    binary = binarize(np.stack(grays), threshold=threshold, seed=seed, invert=invert, top=np.array(tops))
    for i, bits in enumerate(ones_bit):
        if bits is not None:
            binary[i] = 1 - bits if invert else bits
    return binary


def name_problem(name: str) -> str | None:
    """Why a PNG's file name cannot be stored in a bitstream (and written back exactly), or None."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8 text (the file system holds bytes that are not characters)"
    if size > MAX_NAME_BYTES:
        return f"it has {size} bytes in UTF-8; a bitstream stores names of at most {MAX_NAME_BYTES}"
    if "\\" in name:
        return "it holds a backslash, which is a folder separator on Windows"
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return "it is not a plain file name"
    return None


def stored_names_problem(names: list[str] | None, count: int) -> str | None:
    """Why a bitstream's stored names cannot be written back as they are, or None (no names: None)."""
    if names is None:
        return None
    if len(names) != count:
        return f"the file stores {len(names)} names for {count} images"
    for name in names:
        problem = name_problem(name) if isinstance(name, str) else "it is not text"
        if problem is None and not name.lower().endswith(PNG_SUFFIX) \
                and len((name + PNG_SUFFIX).encode("utf-8")) > MAX_NAME_BYTES:
            problem = f"with {PNG_SUFFIX} added it is longer than {MAX_NAME_BYTES} bytes"
        if problem:
            return f"name {name!r}: {problem}"
    written = [n if n.lower().endswith(PNG_SUFFIX) else n + PNG_SUFFIX for n in names]
    if len(set(written)) != count:
        dupe = next(n for n in written if written.count(n) > 1)
        return f"two images would both be written as {dupe!r}"
    return None


def output_names(names: list[str] | None, count: int) -> list[str]:
    """File names for decoded images: the stored originals exactly as they were (.png added to a
    name without it), else image-00000.png ... (`stored_names_problem` says why)."""
    if names is not None and stored_names_problem(names, count) is None:
        return [n if n.lower().endswith(PNG_SUFFIX) else n + PNG_SUFFIX for n in names]
    return [f"image-{i:05d}{PNG_SUFFIX}" for i in range(count)]


def looks_written(mode: str):
    """A test of whether a file is a 28x28 PNG of Pillow `mode` ("1": decoded, "L": sample input),
    i.e. what the writers below make."""
    Image = _pillow()

    def check(path: Path) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    return image.format == "PNG" and image.size == (SIDE, SIDE) and image.mode == mode
        except Exception:  # noqa: BLE001 - whatever Pillow cannot open is not a PNG mcbits wrote
            return False

    return check


def _write_pngs(folder: Path, images: np.ndarray, names: list[str], mode: str) -> list[Path]:
    Image = _pillow()
    kind = "a 1-bit" if mode == "1" else "an 8-bit grayscale"
    check_replaceable(folder, names, looks_written(mode), f"{kind} 28x28 PNG mcbits wrote")
    with files_into_folder(folder) as tmp:
        for image, name in zip(images, names, strict=True):
            if mode == "1":
                gray = Image.fromarray(np.ascontiguousarray(image * 255))
                gray.convert("1", dither=Image.Dither.NONE).save(tmp / name, format="PNG", optimize=True)
            else:
                Image.fromarray(np.ascontiguousarray(image)).save(tmp / name, format="PNG", optimize=True)
    return [folder / n for n in names]


def write_png_folder(
    folder: str | os.PathLike, images: np.ndarray, names: list[str] | None = None
) -> list[Path]:
    """Write 0/1 images (n, 28, 28) as 1-bit PNGs into `folder` (a new one installed atomically;
    in an existing one only earlier 1-bit 28x28 PNGs of the same names are replaced)."""
    images = np.asarray(images, dtype=np.uint8).reshape(-1, SIDE, SIDE)
    return _write_pngs(Path(folder), images, output_names(names, images.shape[0]), "1")


def write_gray_png_folder(folder: str | os.PathLike, images: np.ndarray, names: list[str]) -> list[Path]:
    """Write uint8 grayscale images (n, 28, 28) as 8-bit PNGs named `names` into `folder` (a new
    one installed atomically; in an existing one only earlier 8-bit 28x28 PNGs of the same names
    are replaced)."""
    images = np.asarray(images, dtype=np.uint8).reshape(-1, SIDE, SIDE)
    if len(names) != images.shape[0]:
        raise McbitsError(f"{images.shape[0]} images but {len(names)} names", where=str(folder))
    return _write_pngs(Path(folder), images, names, "L")
