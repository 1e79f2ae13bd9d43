"""`mcbits encode` and `mcbits decode`: the coders on their own, from .npy images to bitstream files."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from mcbits.atomic import write_bytes_atomic
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


def load_binary_images(path: str | Path) -> np.ndarray:
    """Read a .npy of 0/1 uint8 images shaped (n, 28, 28) or (n, 784)."""
    path = Path(path)
    remedy = "pass a .npy uint8 array of 0/1 pixels shaped (n, 28, 28) or (n, 784)"
    if path.suffix != ".npy":
        raise McbitsError(f"{path} is not a .npy file", where=str(path), remedy=remedy)
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise McbitsError(f"cannot read {path}: {err}", where=str(path), remedy=remedy) from err
    if images.shape[1:] not in ((28, 28), (784,)) or images.shape[0] == 0:
        raise McbitsError(f"images have shape {images.shape}", where=str(path), remedy=remedy)
    if images.dtype.kind not in "biu" or images.min() < 0 or images.max() > 1:
        raise McbitsError(f"images must hold only 0 and 1 (dtype {images.dtype})", where=str(path),
                          remedy="binarize them first")
    return images.astype(np.uint8)


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

    header, _ = read_header(bitstream)
    if not isinstance(header, dict) or not isinstance(header.get("coder"), dict):
        raise McbitsError("bitstream header is not a table of coding parameters", where=str(bitstream),
                          remedy="the file was not written by mcbits encode; encode the images again")
    arithmetic = header["coder"].get("arithmetic")
    if arithmetic not in ("exact", "float"):
        raise McbitsError(f"bitstream names an unknown arithmetic {arithmetic!r}", where=str(bitstream),
                          remedy="the file was not written by this mcbits; encode the images again")
    base, sha, vae = load_coding_model(checkpoint, arithmetic, device)
    check_model(header, sha, str(bitstream))
    posterior = header.get("posterior")
    if not isinstance(posterior, dict):
        raise McbitsError("bitstream header has no posterior settings", where=str(bitstream),
                          remedy="the file was not written by mcbits encode; encode the images again")
    try:
        model = posterior_from_settings(base, posterior, module=vae)
    except (KeyError, TypeError, ValueError) as err:
        raise McbitsError(f"bitstream's iterative-inference settings are unreadable ({err!r})",
                          where=str(bitstream), remedy="encode the images again") from err
    if header.get("portable") is not True:
        click.echo("note: this file is not portable (float arithmetic or iterative inference): it "
                   "decodes only with the encoder's CPU and torch/numpy build", err=True)
    count = header.get("num_images")
    progress = CodingProgress(count if isinstance(count, int) and count >= 0 else 0, "decode",
                              show_rate=False)
    try:
        images = decode_from_file(bitstream, model, model_sha256=sha, progress=progress)
    finally:
        progress.close()
    import io

    buffer = io.BytesIO()
    np.save(buffer, images)
    write_bytes_atomic(out, buffer.getvalue())
    click.echo(f"{images.shape[0]} images -> {out} (checksum verified)")
