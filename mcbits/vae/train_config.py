"""The training configuration: every setting that determines a run's result, with upstream's
defaults (the paper profile), the learning-rate schedules, and the device choice.

Schedules (`schedule`): `iwae`, the IWAE paper's stepwise decay below; `exponential`, a smooth
decay from `lr` to `lr_end` over the run; `cosine`, half a cosine from `lr` to `lr_end`. The
smooth ones follow the run's length, so a short run still ends at a small learning rate.

Upstream's settings: Adam (lr 1e-3, eps 1e-4), batch 20, the IWAE paper's learning-rate schedule
(3^i epochs in stage i = 0..7, i.e. milestones 1, 4, 13, 40, 121, 364, 1093, 3280, and
lr * 10^(-i/7) in stage i), 3280 epochs, seed 42. Callers that keep their own copy of these
defaults are tested against them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from mcbits.errors import McbitsError


def schedule_milestones(num_stages: int = 8) -> list[int]:
    """Epochs at which the IWAE schedule's stages end: stage i lasts 3^i epochs.

    With 8 stages: [1, 4, 13, 40, 121, 364, 1093, 3280].
    """
    milestones, total = [], 0
    for i in range(num_stages):
        total += 3**i
        milestones.append(total)
    return milestones


def learning_rate(epoch: int, base_lr: float, num_stages: int = 8) -> float:
    """Learning rate of 0-based `epoch`: base_lr * 10^(-i/7) in stage i of the IWAE schedule.

    Epochs past the last milestone stay in the last stage.
    """
    stage = sum(1 for m in schedule_milestones(num_stages)[:-1] if epoch >= m)
    return base_lr * 10.0 ** (-stage / 7.0)


SCHEDULES = ("iwae", "exponential", "cosine")


def scheduled_lr(epoch: int, config: TrainConfig) -> float:
    """Learning rate of 0-based `epoch` under `config.schedule` (constant within an epoch)."""
    if config.schedule == "iwae":
        return learning_rate(epoch, config.lr, config.schedule_stages)
    end = config.lr if config.lr_end is None else config.lr_end
    progress = min(epoch, config.epochs - 1) / max(config.epochs - 1, 1)  # 0 first epoch, 1 last
    if config.schedule == "exponential":
        return config.lr * (end / config.lr) ** progress
    return end + 0.5 * (config.lr - end) * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainConfig:
    """Everything that determines a training run's result (and so whether a saved state resumes).

    With the `iwae` schedule `epochs` counts epochs of that schedule from its start: a short
    profile runs its first few stages; the smooth schedules stretch over `epochs`.
    `test_images` limits the test images scored after each epoch (None: all).
    `threads` sets torch's intra-op threads for the run (0: leave torch's default); on a small
    shared CPU one thread can be much faster than two.
    """

    num_particles: int
    epochs: int = 3280
    batch_size: int = 20
    lr: float = 1e-3
    adam_eps: float = 1e-4
    schedule: str = "iwae"
    lr_end: float | None = None
    schedule_stages: int = 8
    seed: int = 42
    latent_dim: int = 50
    hidden_dim: int = 200
    test_images: int | None = None
    test_batch_size: int = 500
    bias_init_clip: float = 1e-4
    device: str = "auto"
    cuda_graphs: bool = True
    threads: int = 1
    profile: str = "paper"

    def validate(self) -> None:
        """Raise McbitsError for values that cannot train."""
        checks = [
            (self.num_particles >= 1, "num_particles must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.adam_eps > 0, "lr and adam_eps must be > 0"),
            (self.schedule_stages >= 1, "schedule_stages must be >= 1"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.lr_end is None or self.lr_end > 0, "lr_end must be > 0 or null"),
            (self.threads >= 0, "threads must be >= 0 (0: torch's default)"),
            (self.test_images is None or self.test_images >= 1, "test_images must be >= 1 or null"),
            (
                self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
                "device must be auto, cpu or cuda",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise McbitsError(
                    f"invalid training configuration: {message}", where=f"profile {self.profile}"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-ready) of every field."""
        return asdict(self)



def resolve_device(name: str) -> torch.device:
    """Map the `device` parameter (auto | cpu | cuda[:k]) to a torch device, with a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise McbitsError(
                f"device {name} was asked for, but torch {torch.__version__} sees no CUDA device",
                where="parameter train.device",
                remedy="set train.device to auto or cpu, or install a CUDA build of torch",
            )
        return torch.device(name)
    raise McbitsError(
        f"unknown device {name!r}", where="parameter train.device", remedy="use auto, cpu or cuda"
    )
