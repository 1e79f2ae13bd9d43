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
from mcbits.coding.bitstream import check_model, decode_from_file, encode_to_file, read_header
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
@click.argument("images", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="BinaryVAE state dict (model.pt).")
@click.option("--coder", default=_DEFAULTS.coder, show_default=True,
              help="StochasticCoder, BitsBackCoder, ISBitsBackCoder or CISBitsBackCoder.")
@click.option("--num-particles", default=_DEFAULTS.num_particles, show_default=True, type=int)
@click.option("--lprec", default=_DEFAULTS.lprec, show_default=True, type=int)
@click.option("--bprec", default=_DEFAULTS.bprec, show_default=True, type=int)
@click.option("--log-num-bucket", default=_DEFAULTS.log_num_bucket, show_default=True, type=int)
@click.option("--prior-mprec", default=_DEFAULTS.prior_mprec, show_default=True, type=int)
@click.option("--prop-mprec", default=_DEFAULTS.prop_mprec, show_default=True, type=int)
@click.option("--cond-mprec", default=_DEFAULTS.cond_mprec, show_default=True, type=int)
@click.option("--mprec", default=_DEFAULTS.mprec, show_default=True, type=int,
              help="Precision of the categoricals over particle indices.")
@click.option("--lanes", default=_DEFAULTS.lanes, show_default=True, type=int,
              help="Independent rANS stacks coded in lock step (1 = one stack, as upstream).")
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, type=int)
@click.option("--no-whiten-prior", is_flag=True, help="Code latents with the plain prior (as upstream).")
@click.option("--arithmetic", type=click.Choice(["exact", "float"]), default=_DEFAULTS.arithmetic,
              show_default=True,
              help="exact: integer networks, the file decodes on any machine; float: only on this "
              "machine's CPU and build (for comparison).")
@click.option("--device", default="cpu", show_default=True,
              help="Where exact arithmetic runs its matrix products (cpu, cuda, cuda:1, ...): the bits "
              "are the same on every device.")
def encode_command(images, out, checkpoint, coder, num_particles, lprec, bprec, log_num_bucket,
                   prior_mprec, prop_mprec, cond_mprec, mprec, lanes, seed, no_whiten_prior,
                   arithmetic, device) -> None:
    """Compress binary IMAGES (.npy) into the bitstream file OUT."""
    _refuse_same_file(images, out, "IMAGES file")
    config = CoderConfig(
        coder=coder, num_particles=num_particles, lprec=lprec, bprec=bprec,
        log_num_bucket=log_num_bucket, prior_mprec=prior_mprec, prop_mprec=prop_mprec,
        cond_mprec=cond_mprec, mprec=mprec, seed=seed, lanes=lanes,
        whiten_prior=not no_whiten_prior, arithmetic=arithmetic,
    ).validated()
    data = load_binary_images(images)
    model, sha, _ = load_coding_model(checkpoint, arithmetic, device)
    progress = CodingProgress(data.shape[0], "encode")
    start = time.perf_counter()
    try:
        result = encode_to_file(out, data, make_coder(model, config), model_sha256=sha,
                                progress=progress)
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
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The checkpoint the file was encoded with.")
@click.option("--device", default="cpu", show_default=True,
              help="Where exact arithmetic runs its matrix products (cpu, cuda, ...).")
def decode_command(bitstream, out, checkpoint, device) -> None:
    """Decompress BITSTREAM into OUT (.npy, the original images' shape); coder and parameters come
    from the file's header."""
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
        images = decode_from_file(bitstream, model, model_sha256=sha, progress=progress)
    finally:
        progress.close()
    buffer = io.BytesIO()
    np.save(buffer, images)
    write_bytes_atomic(out, buffer.getvalue())
    click.echo(f"{images.shape[0]} images -> {out} (checksum verified)")
