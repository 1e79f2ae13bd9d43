"""Training a BinaryVAE with the IWAE bound (N = 1 is the ELBO), resumable after any kill.

Upstream's settings (the paper profile): Adam (lr 1e-3, eps 1e-4), batch 20, the IWAE paper's
learning-rate schedule (3^i epochs in stage i = 0..7, i.e. milestones 1, 4, 13, 40, 121, 364, 1093,
3280, and lr * 10^(-i/7) in stage i), 3280 epochs, seed 42, the decoder's output bias set to the
logit of the training set's mean pixel, and a fresh binarization of the training images every
epoch. The checkpoint with the best test loss is kept, and the last one.

Resuming: after every epoch the full state (weights, optimizer, best weights, history, random
generator) is written atomically to one file. A rerun with the same configuration, data and
device loads it and continues; since every random number comes from that saved generator, the
final weights equal those of an uninterrupted run.

Speed on a GPU: with batch 20 a step is a few microseconds of arithmetic and many kernel launches,
so on CUDA the whole step (forward, backward, fused Adam) is captured once in a CUDA graph and
replayed; only the random draws for the next batch run outside it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcbits.errors import McbitsError
from mcbits.vae.bounds import iwae_from_noise, log_mean_exp, log_weights_from_noise, nats_to_bpd
from mcbits.vae.models import NUM_PIXELS, BinaryVAE, save_torch_atomic

STATE_FORMAT = 1


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


@dataclass
class TrainConfig:
    """Everything that determines a training run's result (and so whether a saved state resumes).

    `epochs` counts epochs of the IWAE schedule from its start: a short profile runs its first
    few stages. `test_images` limits the test images scored after each epoch (None: all).
    `threads` sets torch's intra-op threads for the run (0: leave torch's default); on a small
    shared CPU one thread can be much faster than two.
    """

    num_particles: int
    epochs: int = 3280
    batch_size: int = 20
    lr: float = 1e-3
    adam_eps: float = 1e-4
    schedule_stages: int = 8
    seed: int = 42
    latent_dim: int = 50
    hidden_dim: int = 200
    test_images: int | None = None
    test_batch_size: int = 500
    bias_init_clip: float = 1e-4
    device: str = "auto"
    cuda_graphs: bool = True
    threads: int = 0
    profile: str = "paper"

    def validate(self) -> None:
        """Raise McbitsError for values that cannot train."""
        checks = [
            (self.num_particles >= 1, "num_particles must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and self.adam_eps > 0, "lr and adam_eps must be > 0"),
            (self.schedule_stages >= 1, "schedule_stages must be >= 1"),
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


def init_model(config: TrainConfig, train_mean: np.ndarray) -> BinaryVAE:
    """A fresh model: torch's default init under `seed`, output bias = logit(mean pixel)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = BinaryVAE(config.latent_dim, config.hidden_dim)
    p = np.clip(np.asarray(train_mean, dtype=np.float64), config.bias_init_clip, 1.0 - config.bias_init_clip)
    with torch.no_grad():
        model.dec_fc3.bias.copy_(torch.from_numpy(np.log(p) - np.log1p(-p)).float())
    return model


class _StepRunner:
    """One optimisation step on fixed-address input buffers, eager or replayed from a CUDA graph."""

    def __init__(self, model: BinaryVAE, config: TrainConfig, device: torch.device, use_graph: bool):
        self.model = model
        self.device = device
        self.x = torch.zeros(config.batch_size, NUM_PIXELS, device=device)
        self.eps = torch.zeros(config.num_particles, config.batch_size, config.latent_dim, device=device)
        cuda = device.type == "cuda"
        # Fused Adam: one kernel for all parameters (5x faster than the default on a 2-core CPU).
        # On CUDA the lr is a tensor so a captured graph sees changes to it.
        lr: float | torch.Tensor = torch.tensor(config.lr, device=device) if cuda else config.lr
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=lr, eps=config.adam_eps, fused=True, capturable=cuda
        )
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss = torch.zeros((), device=device)
        self.use_graph = use_graph and cuda

    def load_optimizer(self, saved: dict[str, Any]) -> None:
        """Load a saved optimizer state; keeps a CUDA lr a tensor on the device (graphs read it)."""
        self.optimizer.load_state_dict(saved)
        if self.device.type == "cuda":
            for group in self.optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def _eager(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=False)
        loss = -iwae_from_noise(self.model, self.x, self.eps).mean()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def prepare(self) -> None:
        """On CUDA, capture the step in a graph; weights and optimizer state stay as they were."""
        if not self.use_graph:
            return
        try:
            self._capture()
        except Exception as err:  # a capture failure must not stop training: fall back to eager
            warnings.warn(f"CUDA graph capture failed ({err}); training eagerly", stacklevel=2)
            self.graph = None
            self.use_graph = False

    def _capture(self) -> None:
        # Warm-up steps create grads and optimizer state; they change the weights, so snapshot
        # everything first and copy it back in place (the graph keeps the tensors' addresses).
        snapshot = self.snapshot()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._eager()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = self._eager()
        self.restore(snapshot)

    def snapshot(self) -> tuple[list[torch.Tensor], dict[str, Any]]:
        """Copies of the weights and optimizer state, for `restore` after warm-up steps."""
        params = [p.detach().clone() for p in self.model.parameters()]
        return params, copy.deepcopy(self.optimizer.state_dict())

    @torch.no_grad()
    def restore(self, snapshot: tuple[list[torch.Tensor], dict[str, Any]]) -> None:
        """Put weights and optimizer state back in place (same tensors, as a graph needs).

        An optimizer state that was empty at the snapshot becomes zero buffers and step 0, which
        makes Adam's next update identical to its very first one.
        """
        params, saved = snapshot
        for p, kept in zip(self.model.parameters(), params, strict=True):
            p.copy_(kept)
        saved_state = saved.get("state", {})
        for index, p in enumerate(self.model.parameters()):
            live = self.optimizer.state[p]
            old = saved_state.get(index)
            for key, buf in live.items():
                if isinstance(buf, torch.Tensor):
                    if old is None:
                        buf.zero_()
                    else:
                        buf.copy_(torch.as_tensor(old[key]).to(buf.device, buf.dtype))
        for group, old_group in zip(self.optimizer.param_groups, saved["param_groups"], strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].copy_(torch.as_tensor(old_group["lr"]))

    def step(self) -> torch.Tensor:
        """Run one step on the current contents of self.x and self.eps; return the loss (device)."""
        if self.graph is not None:
            self.graph.replay()
            return self.loss
        return self._eager()


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
        on_epoch: called with each epoch's history row.
    """
    config.validate()
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(train_images, test_images, config, state_path, progress, on_epoch)
    finally:
        torch.set_num_threads(threads)


def _train(
    train_images: np.ndarray,
    test_images: np.ndarray,
    config: TrainConfig,
    state_path: str | Path | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    from tqdm import tqdm

    device = resolve_device(config.device)
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

    fingerprint = _fingerprint(config, device, train_images, test_images)
    state_path = Path(state_path) if state_path is not None else None
    saved = _load_resume_state(state_path, fingerprint) if state_path is not None else None

    train_probs = torch.from_numpy(train_images).to(device=device, dtype=torch.float32).div_(255.0)
    model = init_model(config, train_images.mean(axis=0) / 255.0).to(device)
    runner = _StepRunner(model, config, device, use_graph=config.cuda_graphs)
    # Test noise is drawn once from its own seed: the same for every epoch and every resume.
    test_gen = torch.Generator().manual_seed(config.seed + 1)
    test_eps = torch.randn(
        (config.num_particles, test_images.shape[0], config.latent_dim), generator=test_gen
    ).to(device)
    test_x = torch.from_numpy(test_images.astype(np.float32)).to(device)
    gen = torch.Generator(device=device).manual_seed(config.seed)

    history: list[dict[str, float]] = []
    start_epoch = 0
    best_nats = math.inf
    best_epoch = 0
    best_state = _cpu_state(model.state_dict())
    elapsed = 0.0
    if saved is not None:
        model.load_state_dict(saved["model"])
        runner.load_optimizer(saved["optimizer"])
        gen.set_state(saved["generator"])
        history = list(saved["history"])
        start_epoch = int(saved["epoch"])
        best_nats = float(saved["best_test_nats"])
        best_epoch = int(saved["best_epoch"])
        best_state = saved["best_model"]
        elapsed = float(saved["elapsed"])
    runner.prepare()

    n = train_images.shape[0]
    steps_per_epoch = n // config.batch_size
    timed_steps, timed_seconds = 0, 0.0
    bar = tqdm(
        total=config.epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=f"train N={config.num_particles}",
        unit="step",
        disable=not progress,
        mininterval=1.0,
        smoothing=0.05,
    )
    try:
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            lr = learning_rate(epoch, config.lr, config.schedule_stages)
            runner.set_lr(lr)
            model.train()
            perm = torch.randperm(n, generator=gen, device=device)
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            for step in range(steps_per_epoch):
                idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
                # Draw straight into the step's input buffers (one launch each on CUDA).
                torch.bernoulli(train_probs[idx], generator=gen, out=runner.x)
                runner.eps.normal_(generator=gen)
                loss_sum += runner.step()
                if (step + 1) % 100 == 0 or step + 1 == steps_per_epoch:
                    done = 100 if (step + 1) % 100 == 0 else (step + 1) % 100
                    bar.update(done)
                    if progress and (step + 1) % 1000 == 0:
                        bar.set_postfix(
                            epoch=epoch + 1,
                            loss_bpd=f"{nats_to_bpd(float(loss_sum) / (step + 1)):.4f}",
                        )
            model.eval()
            train_nats = float(loss_sum) / steps_per_epoch
            if not math.isfinite(train_nats):
                raise McbitsError(
                    f"training diverged: loss is {train_nats} at epoch {epoch + 1}",
                    where=f"training N={config.num_particles}, profile {config.profile}",
                    remedy="lower the learning rate or check the training data",
                )
            test_nats = _test_loss(model, test_x, test_eps, config.test_batch_size)
            seconds = time.perf_counter() - t0
            timed_steps += steps_per_epoch
            timed_seconds += seconds
            elapsed += seconds
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_bpd": float(nats_to_bpd(train_nats)),
                "test_bpd": float(nats_to_bpd(test_nats)),
                "train_nats": train_nats,
                "test_nats": test_nats,
                "seconds": seconds,
            }
            history.append(row)
            if test_nats < best_nats:
                best_nats, best_epoch = test_nats, epoch + 1
                best_state = _cpu_state(model.state_dict())
            bar.set_postfix(
                epoch=epoch + 1,
                loss_bpd=f"{row['train_bpd']:.4f}",
                test_bpd=f"{row['test_bpd']:.4f}",
            )
            if state_path is not None:
                save_torch_atomic(
                    {
                        "format": STATE_FORMAT,
                        "fingerprint": fingerprint,
                        "epoch": epoch + 1,
                        "model": _cpu_state(model.state_dict()),
                        "optimizer": runner.optimizer.state_dict(),
                        "generator": gen.get_state(),
                        "history": history,
                        "best_model": best_state,
                        "best_test_nats": best_nats,
                        "best_epoch": best_epoch,
                        "elapsed": elapsed,
                        "config": config.to_dict(),
                    },
                    state_path,
                )
            if on_epoch is not None:
                on_epoch(row)
    finally:
        bar.close()

    return TrainResult(
        best_state=best_state,
        last_state=_cpu_state(model.state_dict()),
        history=history,
        best_epoch=best_epoch,
        best_test_nats=best_nats,
        epochs=config.epochs,
        resumed_from_epoch=start_epoch,
        device=str(device),
        train_seconds=elapsed,
        steps_per_second=(timed_steps / timed_seconds) if timed_seconds > 0 else float("nan"),
        cuda_graphs=runner.graph is not None,
        threads=torch.get_num_threads(),
    )


def benchmark_steps(
    num_particles: int,
    steps: int = 300,
    warmup: int = 20,
    batch_size: int = 20,
    device: str = "auto",
    cuda_graphs: bool = True,
) -> dict[str, Any]:
    """Time training steps (random batches, the real step code) and return steps/s and its setup."""
    config = TrainConfig(
        num_particles=num_particles, batch_size=batch_size, device=device, cuda_graphs=cuda_graphs
    )
    dev = resolve_device(device)
    model = init_model(config, np.full(NUM_PIXELS, 0.13)).to(dev)
    runner = _StepRunner(model, config, dev, use_graph=cuda_graphs)
    runner.prepare()
    gen = torch.Generator(device=dev).manual_seed(0)
    probs = torch.full((batch_size, NUM_PIXELS), 0.13, device=dev)

    def one() -> torch.Tensor:
        torch.bernoulli(probs, generator=gen, out=runner.x)
        runner.eps.normal_(generator=gen)
        return runner.step()

    for _ in range(warmup):
        one()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    acc = torch.zeros((), device=dev)
    for _ in range(steps):
        acc += one()
    float(acc)  # waits for the device
    seconds = time.perf_counter() - t0
    return {
        "num_particles": num_particles,
        "batch_size": batch_size,
        "device": str(dev),
        "cuda_graphs": runner.graph is not None,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / seconds,
    }
