"""`mcbits encode` and `mcbits decode`: the coders on their own, from .npy images to bitstream files.

The coding models come from the library (mcbits.loading), as for the stages and the benchmarks."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import click
import numpy as np

from mcbits.atomic import os_error, write_bytes_atomic
from mcbits.cli.images import png_files, read_pngs, stored_names_problem, write_png_folder
from mcbits.cli.options import coder_options, config_from_options, force_option
from mcbits.coding.bitstream import Bitstream, encode_to_file
from mcbits.coding.coders import make_coder
from mcbits.errors import McbitsError
from mcbits.loading import check_device, decoder_model, first_line, load_coding_model
from mcbits.outputs import check_output
from mcbits.progress import CodingProgress

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _npy_header(path: Path, where: str, remedy: str) -> tuple[tuple[int, ...], np.dtype, int, int]:
    """(shape, dtype, header bytes, file bytes) of a .npy file, read without its data."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise McbitsError(f"{path} is not a regular file", where=where, remedy=remedy)
        with open(path, "rb") as f:
            magic = f.read(6)
            if magic.startswith(_ZIP_MAGIC):
                raise McbitsError(f"cannot read {path}: it is a zip archive (an .npz file?), not a .npy "
                                  "array", where=where, remedy=remedy + "; np.save writes one")
            if magic != _NPY_MAGIC:
                raise McbitsError(f"cannot read {path}: it does not start with the .npy magic",
                                  where=where, remedy=remedy)
            f.seek(0)
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise McbitsError(f"cannot read {path}: .npy format version {version[0]}.{version[1]} "
                                      "is not one mcbits reads (1.0 or 2.0)", where=where,
                                      remedy=remedy + "; np.save writes one")
            except McbitsError:
                raise
            except (ValueError, TypeError, SyntaxError, EOFError, OverflowError, KeyError):
                raise McbitsError(f"cannot read {path}: its .npy header is damaged or not one np.save "
                                  "writes", where=where, remedy=remedy) from None
            return tuple(shape), dtype, f.tell(), os.fstat(f.fileno()).st_size
    except OSError as err:
        raise os_error(err, path, "read") from err


def load_binary_images(path: str | Path) -> np.ndarray:
    """Read a .npy of 0/1 images (bool or integer dtype) shaped (n, 28, 28) or (n, 784)."""
    from mcbits.coding.limits import MAX_IMAGES

    path = Path(path)
    where = str(path)
    remedy = "pass a .npy array of 0/1 pixels (bool or integers) shaped (n, 28, 28) or (n, 784)"
    if path.suffix != ".npy":
        raise McbitsError(f"{path} is not a .npy file", where=where, remedy=remedy)
    # the header first: shape, dtype and size are checked before any pixel is mapped or read
    shape, dtype, offset, size = _npy_header(path, where, remedy)
    if dtype.hasobject:
        raise McbitsError(f"cannot read {path}: it holds Python objects (dtype {dtype}), which mcbits "
                          "never unpickles", where=where, remedy=remedy)
    if any(d < 0 for d in shape):
        raise McbitsError(f"cannot read {path}: its .npy header gives the shape {shape}, with a negative "
                          "dimension", where=where, remedy=remedy)
    if len(shape) < 2 or shape[1:] not in ((28, 28), (784,)) or shape[0] == 0:
        raise McbitsError(f"images have shape {shape}", where=where, remedy=remedy)
    if shape[0] > MAX_IMAGES:
        raise McbitsError(f"{shape[0]} images are more than a file holds ({MAX_IMAGES})",
                          where=where, remedy=f"split them into files of at most {MAX_IMAGES} images")
    if dtype.kind not in "biu":
        raise McbitsError(f"images must be integers or booleans holding only 0 and 1 (dtype "
                          f"{dtype})", where=where, remedy="binarize them first")
    want = int(np.prod(shape)) * dtype.itemsize
    if size - offset != want:
        state = "truncated" if size - offset < want else "longer than its header says"
        raise McbitsError(f"cannot read {path}: the file is {state}: its header promises {shape[0]} "
                          f"images ({want} bytes of pixels), it holds {size - offset}",
                          where=where, remedy="use an intact copy of the file, or save it again")
    try:
        # memory-mapped: the shape and dtype are checked before the pixels are read
        images = np.load(path, mmap_mode="r", allow_pickle=False)
        data = np.array(images)
    except OSError as err:
        raise os_error(err, path, "read") from err
    except (ValueError, EOFError, TypeError, OverflowError) as err:
        raise McbitsError(f"cannot read {path}: it is not a valid .npy array ({first_line(err)})",
                          where=where, remedy=remedy) from err
    if not isinstance(images, np.ndarray) or data.shape != shape:
        raise McbitsError(f"cannot read {path}: not a single array", where=where, remedy=remedy)
    if data.min() < 0 or data.max() > 1:
        raise McbitsError(f"images must hold only 0 and 1 (dtype {data.dtype})", where=where,
                          remedy="binarize them first")
    return data.astype(np.uint8)


@click.command("encode")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="BinaryVAE state dict (model.pt).")
@click.option("--threshold", type=float, default=None,
              help="Grayscale PNGs: a pixel is 1 when value/white >= THRESHOLD, white being 255 "
              "(65535 in 16-bit PNGs) (default: 1 with probability value/white, drawn with "
              "--binarize-seed).")
@click.option("--binarize-seed", default=0, show_default=True, type=int,
              help="Seed of the random binarization of grayscale PNGs.")
@click.option("--invert", is_flag=True, help="Grayscale PNGs: dark digits on a light background.")
@force_option("Replace OUT if it exists (never an input or the checkpoint).")
@coder_options
def encode_command(images, out, checkpoint, threshold, binarize_seed, invert, force, device,
                   **options) -> None:
    """Compress IMAGES... into the bitstream file OUT (the last argument).

    IMAGES: one .npy of 0/1 pixels shaped (n, 28, 28) or (n, 784), or 28x28 PNG files and/or
    folders of them (1-bit PNGs as they are; grayscale ones binarized, see --threshold). PNG names
    are stored in the file, so `mcbits decode` can write them back under the same names.
    """
    device = check_device(device)
    paths = [Path(p) for p in images]
    if len(paths) == 1 and paths[0].suffix == ".npy":
        files = paths
    elif any(p.suffix == ".npy" for p in paths):
        raise McbitsError("a .npy file must be the only IMAGES argument", where="IMAGES",
                          remedy="pass one .npy file, or PNG files and folders")
    else:
        files = png_files(paths)
    check_output(out, kind="file", force=force, example="images.mcb", inputs=[
        *(("IMAGES file", p) for p in dict.fromkeys([*paths, *files])), ("checkpoint", checkpoint)])
    if not 0 <= binarize_seed < 1 << 63:
        raise McbitsError(f"--binarize-seed {binarize_seed} must be in 0..2^63 - 1",
                          where="option --binarize-seed")
    config = config_from_options(options)
    arithmetic = config.arithmetic
    names = None
    if files is paths:
        data = load_binary_images(paths[0])
    else:
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
@click.option("--max-work", type=click.IntRange(min=0), default=None,
              help="Refuse a file whose decode takes more than this many decoder-network rows "
              "(images x (particles + 1 + iterative steps x their particles)). Default: 8,192 "
              "rows per image, at most 2^25 in all, which covers every file the pipeline and "
              "mcbits encode write at their documented settings.")
@force_option("Replace an existing OUT: a .npy file, or in a folder only the decoded PNGs of the "
              "same names (other files are kept).")
def decode_command(bitstream, out, checkpoint, device, max_work, force) -> None:
    """Decompress BITSTREAM into OUT: a .npy (the original images' shape) or a folder of 1-bit PNGs
    under the encoded files' names. Coder and parameters come from the file's header.

    An existing OUT is refused unless --force; OUT is never the bitstream, the checkpoint or a
    folder holding them."""
    device = check_device(device)
    to_npy = Path(out).suffix == ".npy"
    check_output(out, kind="file" if to_npy else "folder", force=force,
                 example="decoded.npy" if to_npy else "decoded/ (or decoded.npy for one array)",
                 ours="the decoded PNGs",
                 inputs=[("BITSTREAM", bitstream), ("checkpoint", checkpoint)])
    # one pass: the header is read and validated, and the work budget checked, once, before any work
    stream = Bitstream.open(bitstream, max_work=max_work)
    model, sha = decoder_model(stream.header, checkpoint, device, where=str(bitstream))
    if not stream.header["portable"]:
        click.echo("note: this file is not portable (float arithmetic): it decodes only with the "
                   "encoder's CPU and torch/numpy build", err=True)
    progress = CodingProgress(stream.header["num_images"], "decode", show_rate=False)
    try:
        images = stream.decode(model, model_sha256=sha, progress=progress)
    finally:
        progress.close()
    names = stream.names
    if to_npy:
        buffer = io.BytesIO()
        np.save(buffer, images)
        write_bytes_atomic(out, buffer.getvalue())
        click.echo(f"{images.shape[0]} images -> {out} (checksum verified)")
        return
    if int(np.prod(images.shape[1:])) != 28 * 28:
        raise McbitsError(f"images of shape {images.shape[1:]} cannot be written as 28x28 PNGs",
                          where=str(out), remedy="decode to a .npy file instead")
    problem = stored_names_problem(names, images.shape[0])
    if problem:
        click.echo(f"note: the file's stored names cannot be written back ({problem}): writing "
                   "image-00000.png ... instead", err=True)
    written = write_png_folder(out, images.reshape(-1, 28, 28), names)
    click.echo(f"{len(written)} images -> {Path(out)}/ as PNG files (checksum verified)")
