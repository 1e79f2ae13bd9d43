"""Training a BinaryVAE with the IWAE bound (N = 1 is the ELBO), resumable after any kill.

`train_vae` runs the epochs of a `TrainConfig` (mcbits.vae.train_config) with the step of
mcbits.vae.train_step: a fresh binarization of the training images every epoch, the decoder's
output bias set to the logit of the training set's mean pixel, and a fixed-noise test loss after
every epoch. The checkpoint with the best test loss is kept, and the last one.

Resuming: after every epoch the full state (weights, optimizer, best weights, history, random
generator) is written atomically to one file. A rerun with the same configuration, data and
device loads it and continues; since every random number comes from that saved generator, the
final weights equal those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcbits.errors import McbitsError
from mcbits.vae.bounds import log_mean_exp, log_weights_from_noise, nats_to_bpd
from mcbits.vae.models import NUM_PIXELS, BinaryVAE, save_torch_atomic
from mcbits.vae.train_config import TrainConfig, resolve_device, scheduled_lr
from mcbits.vae.train_step import StepRunner, init_model, run_epoch

STATE_FORMAT = 1


@dataclass
class TrainResult:
    """What a finished training run returns."""

    best_state: dict[str, torch.Tensor]
    last_state: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    best_test_nats: float
    epochs: int
    resumed_from_epoch: int
    device: str
    train_seconds: float
    steps_per_second: float
    cuda_graphs: bool
    threads: int


def _fingerprint(config: TrainConfig, device: torch.device, train: np.ndarray, test: np.ndarray) -> str:
    # A saved state resumes only the run it came from: same settings, device kind and data.
    h = hashlib.sha256()
    settings = config.to_dict()
    settings.pop("device")  # the resolved device kind is what matters, added below
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(device.type.encode())
    h.update(torch.__version__.encode())
    for arr in (train, test):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _test_loss(model: BinaryVAE, test_x: torch.Tensor, test_eps: torch.Tensor, batch: int) -> float:
    # Mean -IWAE_N over the test images with noise fixed for the whole run, so epochs compare.
    total = 0.0
    with torch.no_grad():
        for start in range(0, test_x.shape[0], batch):
            x = test_x[start : start + batch]
            log_w, _ = log_weights_from_noise(model, x, test_eps[:, start : start + batch])
            total += float(-log_mean_exp(log_w.double(), 0).sum())
    return total / test_x.shape[0]


def _cpu_state(module_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in module_state.items()}


def _load_resume_state(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged state is not worth stopping for: start over
        warnings.warn(f"ignoring unreadable training state {path} ({err}); starting over", stacklevel=2)
        return None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        warnings.warn(f"ignoring training state {path} of an unknown format; starting over", stacklevel=2)
        return None
    if state.get("fingerprint") != fingerprint:
        warnings.warn(
            f"training state {path} is of another configuration, data or device; starting over",
            stacklevel=2,
        )
        return None
    return state


@dataclass
class _RunState:
    """What a run has done so far, beside the weights, optimizer and generator: what a resume
    restores."""

    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0  # epochs finished
    best_nats: float = math.inf
    best_epoch: int = 0
    elapsed: float = 0.0

    @classmethod
    def restored(cls, saved: dict[str, Any]) -> _RunState:
        return cls(best_state=saved["best_model"], history=list(saved["history"]), epoch=int(saved["epoch"]),
                   best_nats=float(saved["best_test_nats"]), best_epoch=int(saved["best_epoch"]),
                   elapsed=float(saved["elapsed"]))


def _save_state(path: Path, fingerprint: str, run: _RunState, model: torch.nn.Module, runner: StepRunner,
                gen: torch.Generator, config: TrainConfig) -> None:
    """Write the resumable state after run.epoch epochs (atomically: a kill keeps the last one)."""
    save_torch_atomic(
        {
            "format": STATE_FORMAT,
            "fingerprint": fingerprint,
            "epoch": run.epoch,
            "model": _cpu_state(model.state_dict()),
            "optimizer": runner.optimizer.state_dict(),
            "generator": gen.get_state(),
            "history": run.history,
            "best_model": run.best_state,
            "best_test_nats": run.best_nats,
            "best_epoch": run.best_epoch,
            "elapsed": run.elapsed,
            "config": config.to_dict(),
        },
        path,
    )


def _checked_data(
    train_images: np.ndarray, test_images: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The training images and the (first config.test_images) test images, or a McbitsError."""
    train_images = np.asarray(train_images)
    test_images = np.asarray(test_images)
    if train_images.ndim != 2 or train_images.shape[1] != NUM_PIXELS or train_images.dtype != np.uint8:
        raise McbitsError(
            f"training images must be uint8 (n, {NUM_PIXELS}), got {train_images.dtype} {train_images.shape}",
            where="training data",
        )
    if train_images.shape[0] < config.batch_size:
        raise McbitsError(
            f"{train_images.shape[0]} training images do not fill one batch of {config.batch_size}",
            where="training data",
            remedy="use more training images or a smaller batch_size",
        )
    if config.test_images is not None:
        test_images = test_images[: config.test_images]
    if test_images.ndim != 2 or test_images.shape[1] != NUM_PIXELS or test_images.shape[0] == 0:
        raise McbitsError(
            f"test images must be (m >= 1, {NUM_PIXELS}), got {test_images.shape}",
            where="test data",
        )
    return train_images, test_images


def _test_batch(test_images: np.ndarray, config: TrainConfig, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images and their noise, drawn once from its own seed: the same for every epoch
    and every resume."""
    gen = torch.Generator().manual_seed(config.seed + 1)
    eps = torch.randn((config.num_particles, test_images.shape[0], config.latent_dim), generator=gen)
    return torch.from_numpy(test_images.astype(np.float32)).to(device), eps.to(device)


def _train_epoch(epoch: int, model: BinaryVAE, runner: StepRunner, gen: torch.Generator, num_train: int,
                 config: TrainConfig, test: tuple[torch.Tensor, torch.Tensor],
                 on_steps: Callable[[int], Any]) -> dict[str, float]:
    """One epoch of training, then the test loss: the epoch's history row."""
    t0 = time.perf_counter()
    lr = scheduled_lr(epoch, config)
    runner.set_lr(lr)
    model.train()
    steps, loss_sum = run_epoch(runner, num_train, gen, on_steps=on_steps)
    model.eval()
    train_nats = float(loss_sum) / steps
    if not math.isfinite(train_nats):
        raise McbitsError(
            f"training diverged: loss is {train_nats} at epoch {epoch + 1}",
            where=f"training N={config.num_particles}, profile {config.profile}",
            remedy="lower the learning rate or check the training data",
        )
    test_nats = _test_loss(model, *test, config.test_batch_size)
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_bpd": float(nats_to_bpd(train_nats)),
        "test_bpd": float(nats_to_bpd(test_nats)),
        "train_nats": train_nats,
        "test_nats": test_nats,
        "seconds": time.perf_counter() - t0,
    }
    return row


def train_vae(
    train_images: np.ndarray,
    test_images: np.ndarray,
    config: TrainConfig,
    state_path: str | Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a BinaryVAE with the IWAE_N bound; resume from `state_path` when it holds this run.

    Args:
        train_images: grayscale uint8 (n, 784) in 0..255; binarized afresh each epoch as
            Bernoulli(pixel / 255). Images that do not fill the last batch of an epoch are skipped
            that epoch (the shuffle changes which), so every step has the same shape.
        test_images: fixed 0/1 images (m, 784) for the per-epoch test loss (-IWAE_N, N of config).
        config: see TrainConfig.
        state_path: where the resumable state is written after every epoch (None: no resuming).
        progress: show a tqdm bar (epoch, loss in bits/dim).
        on_epoch: called with each epoch's history row (on resume, first with every restored row).
    """
    from tqdm import tqdm

    config.validate()
    previous_threads = torch.get_num_threads()
    if config.threads:  # intra-op threads for this run (0: torch's default), restored afterwards
        torch.set_num_threads(config.threads)
    try:
        device = resolve_device(config.device)
        train_images, test_images = _checked_data(train_images, test_images, config)

        fingerprint = _fingerprint(config, device, train_images, test_images)
        state_path = Path(state_path) if state_path is not None else None
        saved = _load_resume_state(state_path, fingerprint) if state_path is not None else None

        train_probs = torch.from_numpy(train_images).to(device=device, dtype=torch.float32).div_(255.0)
        model = init_model(config, train_images.mean(axis=0) / 255.0).to(device)
        runner = StepRunner(model, config, device, use_graph=config.cuda_graphs, train_probs=train_probs)
        test = _test_batch(test_images, config, device)
        gen = torch.Generator(device=device).manual_seed(config.seed)

        run = _RunState(best_state=_cpu_state(model.state_dict()))
        if saved is not None:
            model.load_state_dict(saved["model"])
            runner.load_optimizer(saved["optimizer"])
            gen.set_state(saved["generator"])
            run = _RunState.restored(saved)
        if on_epoch is not None:
            for row in run.history:
                on_epoch(row)
        runner.prepare()

        start_epoch = run.epoch
        steps_per_epoch = train_images.shape[0] // config.batch_size
        timed_seconds = 0.0
        # One bar over all steps of the run: its ETA is the run's; the postfix names the epoch.
        bar = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                   desc=f"train N={config.num_particles}", unit="step", disable=not progress,
                   mininterval=1.0, smoothing=0.05)
        last_losses = ""
        try:
            for epoch in range(start_epoch, config.epochs):
                bar.set_postfix_str(f"epoch {epoch + 1}/{config.epochs}{last_losses}", refresh=False)
                row = _train_epoch(epoch, model, runner, gen, train_images.shape[0], config,
                                   test, bar.update)
                last_losses = f", train {row['train_bpd']:.4f} test {row['test_bpd']:.4f} bits/dim"
                timed_seconds += row["seconds"]
                run.elapsed += row["seconds"]
                run.epoch = epoch + 1
                run.history.append(row)
                if row["test_nats"] < run.best_nats:
                    run.best_nats, run.best_epoch = row["test_nats"], epoch + 1
                    run.best_state = _cpu_state(model.state_dict())
                if state_path is not None:
                    _save_state(state_path, fingerprint, run, model, runner, gen, config)
                if on_epoch is not None:
                    on_epoch(row)
        finally:
            bar.close()

        timed_steps = (config.epochs - start_epoch) * steps_per_epoch
        return TrainResult(
            best_state=run.best_state,
            last_state=_cpu_state(model.state_dict()),
            history=run.history,
            best_epoch=run.best_epoch,
            best_test_nats=run.best_nats,
            epochs=config.epochs,
            resumed_from_epoch=start_epoch,
            device=str(device),
            train_seconds=run.elapsed,
            steps_per_second=(timed_steps / timed_seconds) if timed_seconds > 0 else float("nan"),
            cuda_graphs=runner.graph is not None,
            threads=torch.get_num_threads(),
        )
    finally:
        torch.set_num_threads(previous_threads)
