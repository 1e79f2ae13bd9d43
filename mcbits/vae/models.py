"""The BinaryVAE of the IWAE paper (binarized MNIST), as McBits trains and codes with it.

Architecture: encoder 784-200-200 (tanh) with two linear heads for the latent mean and log-std;
decoder 50-200-200-784 (tanh) giving Bernoulli logits. Parameter names match upstream's published
checkpoints (enc_fc1, enc_fc2, enc_fc31, enc_fc32, dec_fc1, dec_fc2, dec_fc3), so their state
dicts load with no conversion and the state dicts we save load into upstream's code.

The coders need only `encode(x) -> (mean, std)` and `decode(z) -> probs`; both are plain,
deterministic functions of their inputs (no dropout, no batch statistics).
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

import torch
from torch import nn

from mcbits.atomic import atomic_output
from mcbits.errors import McbitsError

NUM_PIXELS = 784

# Parameter names in the order upstream's module defines them; load_model checks against these.
PARAM_LAYERS = ("enc_fc1", "enc_fc2", "enc_fc31", "enc_fc32", "dec_fc1", "dec_fc2", "dec_fc3")


def expected_shapes(
    latent_dim: int, hidden_dim: int, num_pixels: int = NUM_PIXELS
) -> dict[str, tuple[int, ...]]:
    """Return {state-dict key: shape} of a BinaryVAE with these sizes."""
    layers = {
        "enc_fc1": (hidden_dim, num_pixels),
        "enc_fc2": (hidden_dim, hidden_dim),
        "enc_fc31": (latent_dim, hidden_dim),
        "enc_fc32": (latent_dim, hidden_dim),
        "dec_fc1": (hidden_dim, latent_dim),
        "dec_fc2": (hidden_dim, hidden_dim),
        "dec_fc3": (num_pixels, hidden_dim),
    }
    shapes: dict[str, tuple[int, ...]] = {}
    for name, (out_dim, in_dim) in layers.items():
        shapes[f"{name}.weight"] = (out_dim, in_dim)
        shapes[f"{name}.bias"] = (out_dim,)
    return shapes


class BinaryVAE(nn.Module):
    """VAE with a diagonal Gaussian posterior, N(0, I) prior and Bernoulli pixels.

    Args:
        latent_dim: size of the latent vector z (upstream: 50).
        hidden_dim: width of the two hidden layers of encoder and decoder (upstream: 200).
    """

    def __init__(self, latent_dim: int = 50, hidden_dim: int = 200):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.hidden_dim = int(hidden_dim)
        self.num_pixels = NUM_PIXELS
        self.enc_fc1 = nn.Linear(NUM_PIXELS, hidden_dim)
        self.enc_fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.enc_fc31 = nn.Linear(hidden_dim, latent_dim)
        self.enc_fc32 = nn.Linear(hidden_dim, latent_dim)
        self.dec_fc1 = nn.Linear(latent_dim, hidden_dim)
        self.dec_fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.dec_fc3 = nn.Linear(hidden_dim, NUM_PIXELS)

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        # Accept (B, 784) or (B, 1, 28, 28) like upstream; integer pixels take the weights' dtype.
        if x.dim() == 4:
            x = x.reshape(x.shape[0], -1)
        if x.dim() != 2 or x.shape[-1] != self.num_pixels:
            raise ValueError(
                f"expected images (B, {self.num_pixels}) or (B, 1, 28, 28), got {tuple(x.shape)}"
            )
        return x.to(self.enc_fc1.weight.dtype)

    def encode_log_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior's (mean, log std), each (B, latent_dim)."""
        h = torch.tanh(self.enc_fc1(self._flatten(x)))
        h = torch.tanh(self.enc_fc2(h))
        return self.enc_fc31(h), self.enc_fc32(h)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior q(z|x) as (mean, std), each (B, latent_dim); x holds 0/1 pixels."""
        mean, log_std = self.encode_log_std(x)
        return mean, torch.exp(log_std)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Return the Bernoulli logits of p(x|z), shape (..., 784), for z (..., latent_dim)."""
        h = torch.tanh(self.dec_fc1(z))
        h = torch.tanh(self.dec_fc2(h))
        return self.dec_fc3(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return the pixel probabilities p(x_i = 1 | z), shape (..., 784)."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as `encode`: the posterior parameters are what a forward pass means for a coder."""
        return self.encode(x)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _load_error(err: Exception, path: Path) -> McbitsError:
    """torch's load error as an McbitsError, never with its advice to load with weights_only=False
    or to allow globals (which would run the file's code)."""
    text = _ANSI.sub("", f"{type(err).__name__}: {err}")
    found = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    # Only the reason: torch's next lines advise weights_only=False / safe globals.
    reason = (found.group(1) if found else text.strip().splitlines()[0]).split(". ")[0].strip().rstrip(".")
    if found and re.search(r"global|class", reason, flags=re.I):
        return McbitsError(
            f"model file {path} is not a plain PyTorch state dict: it holds Python objects that are "
            f"not tensors ({reason}); mcbits reads a checkpoint as data only, never as code to run",
            where=str(path),
            remedy="point at a BinaryVAE model.pt as torch.save(model.state_dict()) writes it (the "
            "train stage, or mcbits fetch checkpoint)")
    return McbitsError(
        f"model file {path} is not a readable PyTorch state dict ({reason})",
        where=str(path),
        remedy="the file is corrupt or truncated: delete it, then train or fetch the model again",
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise McbitsError(f"cannot read model file {path}: {err.strerror or err}", where=str(path),
                          remedy="check the path and its permissions") from err
    if mode is None:
        raise McbitsError(
            f"model file {path} does not exist",
            where=str(path),
            remedy="train the model first, or fetch a published one (mcbits fetch checkpoint)",
        )
    if not stat.S_ISREG(mode):  # never opened: a FIFO or a device would block or never end
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a special file")
        raise McbitsError(f"model file {path} is {kind}, not a regular file", where=str(path),
                          remedy="point at a model.pt file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise McbitsError(f"cannot read model file {path}: {err.strerror or err}", where=str(path),
                          remedy="check the path and its permissions") from err
    try:
        # weights_only: a checkpoint is data, never code to run.
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged zip/pickle
        raise _load_error(err, path) from err
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise McbitsError(
            f"model file {path} holds a {type(obj).__name__}, not a state dict of tensors",
            where=str(path),
            remedy="point at a BinaryVAE model.pt (as torch.save(model.state_dict()) writes)",
        )
    return obj


def validate_state_dict(
    state: dict[str, torch.Tensor],
    where: str,
    latent_dim: int | None = None,
    hidden_dim: int | None = None,
) -> tuple[int, int]:
    """Check keys, shapes and finiteness of a BinaryVAE state dict; return (latent_dim, hidden_dim).

    Sizes not given are read from the state dict itself (enc_fc31: (latent, hidden)).
    """
    head = state.get("enc_fc31.weight")
    if latent_dim is None or hidden_dim is None:
        if head is None or head.dim() != 2:
            raise McbitsError(
                "state dict has no 2-D enc_fc31.weight: not a BinaryVAE",
                where=where,
                remedy="use a checkpoint written by mcbits or upstream McBits (BinaryVAE)",
            )
        latent_dim = int(head.shape[0]) if latent_dim is None else latent_dim
        hidden_dim = int(head.shape[1]) if hidden_dim is None else hidden_dim
    expected = expected_shapes(latent_dim, hidden_dim)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise McbitsError(
            f"state dict keys differ from a BinaryVAE's: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}",
            where=where,
            remedy="use a checkpoint written by mcbits or upstream McBits (BinaryVAE)",
        )
    for key, shape in expected.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape:
            raise McbitsError(
                f"{key} has shape {tuple(tensor.shape)}, expected {shape} "
                f"(latent_dim={latent_dim}, hidden_dim={hidden_dim})",
                where=where,
                remedy="check the model sizes in the training config match the checkpoint",
            )
        if not tensor.is_floating_point():
            raise McbitsError(
                f"{key} has dtype {tensor.dtype}, expected floating point", where=where
            )
        if not bool(torch.isfinite(tensor).all()):
            raise McbitsError(
                f"{key} holds non-finite values (NaN or inf)",
                where=where,
                remedy="training diverged or the file is damaged: retrain or re-import this model",
            )
    return latent_dim, hidden_dim


def load_model(
    path: str | os.PathLike,
    latent_dim: int | None = None,
    hidden_dim: int | None = None,
    device: str | torch.device = "cpu",
) -> BinaryVAE:
    """Load a BinaryVAE from a state-dict file, validated, in eval mode.

    Raises McbitsError for a missing, corrupt or truncated file, wrong keys or shapes, or non-finite
    weights. Sizes not given are inferred from the file.
    """
    path = Path(path)
    state = _read_state_dict(path)
    latent_dim, hidden_dim = validate_state_dict(state, str(path), latent_dim, hidden_dim)
    model = BinaryVAE(latent_dim=latent_dim, hidden_dim=hidden_dim)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return model.to(device).eval()


def save_model(model: BinaryVAE, path: str | os.PathLike) -> None:
    """Save the model's state dict (float32, CPU) atomically: temporary name, then rename."""
    save_torch_atomic(
        {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()},
        path,
    )


def save_torch_atomic(obj: object, path: str | os.PathLike) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over it."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
