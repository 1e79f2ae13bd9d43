"""`mcbits encode` and `mcbits decode`: the coders on their own, from .npy images to bitstream files."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import click
import numpy as np

from mcbits.atomic import os_error, write_bytes_atomic
from mcbits.cli.images import png_files, read_pngs, write_png_folder
from mcbits.cli.options import coder_options, config_from_options
from mcbits.coding.bitstream import check_model, decode_with_names, encode_to_file, read_header
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.data.checksums import file_sha256
from mcbits.errors import McbitsError
from mcbits.progress import CodingProgress

_DEFAULTS = CoderConfig()


def load_coding_model(checkpoint: str | Path, arithmetic: str = _DEFAULTS.arithmetic, device: str = "cpu"):
    """Load a BinaryVAE checkpoint as the coders' model in `arithmetic`.

    Returns (coding model, SHA-256 of the file, the torch module). device: where the exact
    arithmetic's GEMMs run ("cpu": numpy's BLAS; e.g. "cuda": torch), with identical results.
    """
    from mcbits.vae.adapter import coding_model
    from mcbits.vae.models import load_model

    vae = load_model(checkpoint)
    gemm = "numpy" if device == "cpu" else device
    return coding_model(vae, arithmetic, gemm), file_sha256(checkpoint), vae


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def load_binary_images(path: str | Path) -> np.ndarray:
    """Read a .npy of 0/1 images (bool or integer dtype) shaped (n, 28, 28) or (n, 784)."""
    from mcbits.coding.limits import MAX_IMAGES

    path = Path(path)
    where = str(path)
    remedy = "pass a .npy array of 0/1 pixels (bool or integers) shaped (n, 28, 28) or (n, 784)"
    if path.suffix != ".npy":
        raise McbitsError(f"{path} is not a .npy file", where=where, remedy=remedy)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise McbitsError(f"{path} is not a regular file", where=where, remedy=remedy)
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise os_error(err, path, "read") from err
    if magic.startswith(_ZIP_MAGIC):
        raise McbitsError(f"cannot read {path}: it is a zip archive (an .npz file?), not a .npy array",
                          where=where, remedy=remedy + "; np.save writes one")
    if magic != _NPY_MAGIC:
        raise McbitsError(f"cannot read {path}: it does not start with the .npy magic", where=where,
                          remedy=remedy)
    try:
        # memory-mapped: the shape and dtype are checked before the pixels are read
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as err:
        raise os_error(err, path, "read") from err
    except (ValueError, EOFError, TypeError) as err:
        raise McbitsError(f"cannot read {path}: {err}", where=where, remedy=remedy) from err
    if not isinstance(images, np.ndarray):
        raise McbitsError(f"cannot read {path}: not a single array", where=where, remedy=remedy)
    if images.ndim < 2 or images.shape[1:] not in ((28, 28), (784,)) or images.shape[0] == 0:
        raise McbitsError(f"images have shape {images.shape}", where=where, remedy=remedy)
    if images.shape[0] > MAX_IMAGES:
        raise McbitsError(f"{images.shape[0]} images are more than a file holds ({MAX_IMAGES})",
                          where=where, remedy=f"split them into files of at most {MAX_IMAGES} images")
    if images.dtype.kind not in "biu":
        raise McbitsError(f"images must be integers or booleans holding only 0 and 1 (dtype "
                          f"{images.dtype})", where=where, remedy="binarize them first")
    try:
        data = np.array(images)
    except (OSError, ValueError) as err:
        raise McbitsError(f"cannot read {path}: {err}", where=where, remedy=remedy) from err
    if data.min() < 0 or data.max() > 1:
        raise McbitsError(f"images must hold only 0 and 1 (dtype {data.dtype})", where=where,
                          remedy="binarize them first")
    return data.astype(np.uint8)


def _same_file(a: str | Path, b: str | Path) -> bool:
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_same_file(source: str | Path, out: str | Path, what: str) -> None:
    if _same_file(source, out):
        raise McbitsError(f"OUT {out} is the {what} itself: writing it would destroy the input",
                          where=str(out), remedy="choose another output path")


@click.command("encode")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="BinaryVAE state dict (model.pt).")
@click.option("--threshold", type=float, default=None,
              help="Grayscale PNGs: a pixel is 1 when value/255 >= THRESHOLD (default: 1 with "
              "probability value/255, drawn with --binarize-seed).")
@click.option("--binarize-seed", default=0, show_default=True, type=int,
              help="Seed of the random binarization of grayscale PNGs.")
@click.option("--invert", is_flag=True, help="Grayscale PNGs: dark digits on a light background.")
@coder_options
def encode_command(images, out, checkpoint, threshold, binarize_seed, invert, device, **options) -> None:
    """Compress IMAGES... into the bitstream file OUT (the last argument).

    IMAGES: one .npy of 0/1 pixels shaped (n, 28, 28) or (n, 784), or 28x28 PNG files and/or
    folders of them (1-bit PNGs as they are; grayscale ones binarized, see --threshold). PNG names
    are stored in the file, so `mcbits decode` can write them back under the same names.
    """
    paths = [Path(p) for p in images]
    for path in paths:
        _refuse_same_file(path, out, "IMAGES file")
    if not 0 <= binarize_seed < 1 << 63:
        raise McbitsError(f"--binarize-seed {binarize_seed} must be in 0..2^63 - 1",
                          where="option --binarize-seed")
    config = config_from_options(options)
    arithmetic = config.arithmetic
    names = None
    if len(paths) == 1 and paths[0].suffix == ".npy":
        data = load_binary_images(paths[0])
    elif any(p.suffix == ".npy" for p in paths):
        raise McbitsError("a .npy file must be the only IMAGES argument", where="IMAGES",
                          remedy="pass one .npy file, or PNG files and folders")
    else:
        files = png_files(paths)
        data = read_pngs(files, threshold=threshold, seed=binarize_seed, invert=invert)
        names = [f.name for f in files]
    model, sha, _ = load_coding_model(checkpoint, arithmetic, device)
    progress = CodingProgress(data.shape[0], "encode")
    start = time.perf_counter()
    try:
        result = encode_to_file(out, data, make_coder(model, config), model_sha256=sha,
                                progress=progress, names=names)
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    if result.stored:
        click.echo("note: the coded message was larger than the raw pixels (8 a byte): the file "
                   "stores those", err=True)
    if arithmetic == "float":
        click.echo("note: float arithmetic: this file decodes only with this machine's CPU and "
                   "torch/numpy build (use --arithmetic exact for a portable file)", err=True)
    click.echo(
        f"{result.num_images} images -> {out}: {result.file_bytes} bytes, "
        f"net {result.net_bpd:.4f} bits/dim, total {result.total_bpd:.4f} bits/dim, "
        f"{result.num_images / seconds:.1f} images/s"
    )


@click.command("decode")
@click.argument("bitstream", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The checkpoint the file was encoded with.")
@click.option("--device", default="cpu", show_default=True,
              help="Where exact arithmetic runs its matrix products (cpu, cuda, ...).")
def decode_command(bitstream, out, checkpoint, device) -> None:
    """Decompress BITSTREAM into OUT: a .npy (the original images' shape) or a folder of 1-bit PNGs
    under the encoded files' names. Coder and parameters come from the file's header."""
    from mcbits.vae.iterative import posterior_from_settings

    _refuse_same_file(bitstream, out, "BITSTREAM")
    header, _ = read_header(bitstream)  # the whole header is validated here, before any work
    where = str(bitstream)
    base, sha, vae = load_coding_model(checkpoint, header["coder"]["arithmetic"], device)
    check_model(header, sha, where)
    try:
        model = posterior_from_settings(base, header["posterior"], module=vae)
    except McbitsError as err:
        raise McbitsError(f"the file's iterative-inference settings are refused: {err.what}",
                          where=where, remedy="encode the images again") from err
    if not header["portable"]:
        click.echo("note: this file is not portable (float arithmetic): it decodes only with the "
                   "encoder's CPU and torch/numpy build", err=True)
    progress = CodingProgress(header["num_images"], "decode", show_rate=False)
    try:
        images, names = decode_with_names(bitstream, model, model_sha256=sha, progress=progress)
    finally:
        progress.close()
    if Path(out).suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, images)
        write_bytes_atomic(out, buffer.getvalue())
        click.echo(f"{images.shape[0]} images -> {out} (checksum verified)")
        return
    if int(np.prod(images.shape[1:])) != 28 * 28:
        raise McbitsError(f"images of shape {images.shape[1:]} cannot be written as 28x28 PNGs",
                          where=str(out), remedy="decode to a .npy file instead")
    written = write_png_folder(out, images.reshape(-1, 28, 28), names)
    click.echo(f"{len(written)} images -> {Path(out)}/ as PNG files (checksum verified)")
