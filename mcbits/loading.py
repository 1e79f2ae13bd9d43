"""The coders' model from a checkpoint, and the one a bitstream's header asks for.

Above both the coding layer and the model (mcbits.vae): the CLI, the stages and the benchmarks
build their coding models here, so none of them imports another's code. torch is imported only
when a function needs it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from mcbits.atomic import os_error
from mcbits.coding.config import CoderConfig
from mcbits.errors import McbitsError


def first_line(err: BaseException) -> str:
    """An exception's first line (its type when it has no text): for messages that quote it."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def available_devices() -> list[str]:
    """The devices `--device` can name on this machine: cpu, then cuda / cuda:N, mps, xpu as present."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found += ["xpu", *(f"xpu:{i}" for i in range(xpu.device_count()))]
    return found


def check_device(device: str | None, option: str = "--device") -> str:
    """The device `option` names, checked to exist here and to compute in float64: "cpu" (numpy's
    BLAS does the products) or a torch device name. Raises McbitsError naming the devices there are."""
    import torch

    text = (device or "").strip()
    where = f"option {option}"
    available = available_devices()
    remedy = f"use one of the devices available here: {', '.join(available)}"
    if not text:
        raise McbitsError(f"{option} is empty: it must name a device (available here: "
                          f"{', '.join(available)})", where=where, remedy=remedy)
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise McbitsError(f"{option} {text!r} is not a device (available here: {', '.join(available)})",
                          where=where, remedy=remedy) from None
    if dev.type == "cpu":
        return "cpu"
    if dev.type not in ("cuda", "mps", "xpu"):
        raise McbitsError(f"{option} {text!r}: mcbits cannot compute on a {dev.type} device (available "
                          f"here: {', '.join(available)})", where=where, remedy=remedy)
    if str(dev) not in available:
        raise McbitsError(f"{option} {text!r}: there is no such device on this machine (available here: "
                          f"{', '.join(available)})", where=where, remedy=remedy)
    try:  # the exact GEMMs run in float64 there (mps, for one, has none)
        probe = torch.ones((2, 2), dtype=torch.float64, device=dev)
        float((probe @ probe).sum().cpu())
    except Exception as err:  # noqa: BLE001 - a driver or backend that cannot do the work
        raise McbitsError(f"{option} {text!r}: the device cannot compute in float64 here "
                          f"({first_line(err)})", where=where, remedy=remedy) from err
    return str(dev)


def check_checkpoint(checkpoint: str | os.PathLike) -> Path:
    """A checkpoint path that is a regular file (a FIFO or device is never opened)."""
    path = Path(checkpoint)
    remedy = "train the model first, or fetch a published one (mcbits fetch checkpoint)"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise McbitsError(f"model file {path} does not exist", where=str(path), remedy=remedy) from None
    except OSError as err:
        raise os_error(err, path, "read") from err
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a special file")
        raise McbitsError(f"model file {path} is {kind}, not a regular file", where=str(path),
                          remedy="point at a model.pt file")
    return path


def load_coding_model(checkpoint: str | os.PathLike, arithmetic: str = CoderConfig.arithmetic,
                      device: str = "cpu") -> tuple[Any, str, Any]:
    """Load a BinaryVAE checkpoint as the coders' model in `arithmetic`.

    Returns (coding model, SHA-256 of the file, the torch module). device: where the exact
    arithmetic's GEMMs and particle scores run ("cpu": numpy's BLAS and compiled kernels; e.g.
    "cuda": torch), with identical results; checked to exist here (check_device).
    """
    from mcbits.data.checksums import file_sha256
    from mcbits.vae.adapter import coding_model
    from mcbits.vae.models import load_model

    device = check_device(device)
    path = check_checkpoint(checkpoint)
    vae = load_model(path)  # its errors never suggest weights_only=False (mcbits.vae.models)
    gemm = "numpy" if device == "cpu" else device
    return coding_model(vae, arithmetic, gemm), file_sha256(path), vae


def model_for(header: dict[str, Any], base: Any, module: Any, where: str = "bitstream") -> Any:
    """The coding model a bitstream's header asks for, from the checkpoint's coding model `base`
    (in the header's arithmetic) and its torch module: plain, or with the header's iterative
    inference. McbitsError when the header's iterative-inference settings are refused."""
    from mcbits.vae.iterative import posterior_from_settings

    try:
        return posterior_from_settings(base, header["posterior"], module=module)
    except McbitsError as err:
        raise McbitsError(f"the file's iterative-inference settings are refused: {err.what}",
                          where=where, remedy="encode the images again") from err


def decoder_model(header: dict[str, Any], checkpoint: str | os.PathLike, device: str = "cpu",
                  where: str = "bitstream") -> tuple[Any, str]:
    """The checkpoint loaded as the model a bitstream's (validated) header asks for: its arithmetic
    and posterior. Returns (coding model, SHA-256 of the checkpoint) for Bitstream.decode."""
    base, sha, module = load_coding_model(checkpoint, header["coder"]["arithmetic"], device)
    return model_for(header, base, module, where), sha
