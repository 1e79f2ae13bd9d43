"""The training step: a fresh model's initialisation and optimisation steps run a chunk at a time
on fixed-address buffers, eager or, on CUDA, replayed from one captured graph per chunk; and a
timer for it (benchmarks).

A step of batch 20 is a few microseconds of arithmetic and dozens of kernel launches, so launches
from Python bound its speed on a GPU. Here the random numbers of `CHUNK_STEPS` steps (which
images, their binarization uniforms, the particles' noise) are drawn together, three launches per
chunk, and the steps themselves (batch gather, binarization, forward, backward, fused Adam, loss
sum) replay as one graph. The draws come from one seeded generator outside the graph, in the same
order on every device kind and with or without graphs, so the weights are a function of the seed
(and the device kind's random streams) alone, and a run resumes exactly from its saved generator.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
import torch

from mcbits.vae.bounds import iwae_from_noise
from mcbits.vae.models import NUM_PIXELS, BinaryVAE
from mcbits.vae.train_config import TrainConfig, resolve_device

# Steps whose draws are made together and which replay as one CUDA graph. Part of the random
# stream's layout: changing it changes trained weights (it is not a tuning knob).
CHUNK_STEPS = 50


def init_model(config: TrainConfig, train_mean: np.ndarray) -> BinaryVAE:
    """A fresh model: torch's default init under `seed`, output bias = logit(mean pixel)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = BinaryVAE(config.latent_dim, config.hidden_dim)
    p = np.clip(np.asarray(train_mean, dtype=np.float64), config.bias_init_clip, 1.0 - config.bias_init_clip)
    with torch.no_grad():
        model.dec_fc3.bias.copy_(torch.from_numpy(np.log(p) - np.log1p(-p)).float())
    return model


class StepRunner:
    """Optimisation steps a chunk at a time on fixed-address buffers (a CUDA graph per chunk).

    `train_probs` (n, 784) are the training images' pixel probabilities on the device. For a
    chunk: `draw(batch_indices, generator)` fills the buffers, `run(k)` takes k steps from them
    and adds each step's loss to `loss_sum`.
    """

    def __init__(
        self, model: BinaryVAE, config: TrainConfig, device: torch.device, use_graph: bool,
        train_probs: torch.Tensor | None = None,
    ):
        self.model = model
        self.device = device
        self.batch_size = config.batch_size
        k, b, n, d = CHUNK_STEPS, config.batch_size, config.num_particles, config.latent_dim
        self.train_probs = (
            train_probs if train_probs is not None else torch.full((b, NUM_PIXELS), 0.5, device=device)
        )
        self.indices = torch.zeros(k, b, dtype=torch.long, device=device)
        self.uniforms = torch.zeros(k, b, NUM_PIXELS, device=device)
        self.eps = torch.zeros(k, n, b, d, device=device)
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        cuda = device.type == "cuda"
        # Fused Adam: one kernel for all parameters (5x faster than the default on a 2-core CPU).
        # On CUDA the lr is a tensor so a captured graph sees changes to it.
        lr: float | torch.Tensor = torch.tensor(config.lr, device=device) if cuda else config.lr
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=lr, eps=config.adam_eps, fused=True, capturable=cuda
        )
        self.graph: torch.cuda.CUDAGraph | None = None
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

    def draw(self, batch_indices: torch.Tensor, generator: torch.Generator) -> int:
        """Fill the buffers for len(batch_indices) // batch_size steps (at most CHUNK_STEPS).

        `batch_indices` are rows of `train_probs` (a slice of the epoch's permutation). Returns
        the number of steps drawn.
        """
        steps = batch_indices.numel() // self.batch_size
        if not 1 <= steps <= CHUNK_STEPS or batch_indices.numel() != steps * self.batch_size:
            raise ValueError(
                f"a chunk holds 1..{CHUNK_STEPS} whole batches, got {batch_indices.numel()} rows"
            )
        self.indices[:steps].copy_(batch_indices.view(steps, self.batch_size))
        self.uniforms[:steps].uniform_(generator=generator)
        self.eps[:steps].normal_(generator=generator)
        return steps

    def _eager_step(self, j: int) -> None:
        # Dynamic binarization: pixel = 1 with probability p, from the drawn uniforms.
        x = (self.uniforms[j] < self.train_probs[self.indices[j]]).to(self.uniforms.dtype)
        self.optimizer.zero_grad(set_to_none=False)
        loss = -iwae_from_noise(self.model, x, self.eps[j]).mean()
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach()

    def run(self, steps: int) -> None:
        """Take `steps` steps from the drawn buffers: one graph replay for a whole chunk."""
        if self.graph is not None and steps == CHUNK_STEPS:
            self.graph.replay()
            return
        for j in range(steps):
            self._eager_step(j)

    def prepare(self) -> None:
        """On CUDA, capture a chunk of steps in a graph; weights and optimizer state stay as they were."""
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
        loss_before = self.loss_sum.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                self._eager_step(0)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for j in range(CHUNK_STEPS):
                self._eager_step(j)
        self.graph = graph
        self.restore(snapshot)
        self.loss_sum.copy_(loss_before)

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


def run_epoch(runner: StepRunner, num_images: int, generator: torch.Generator,
              on_steps: Any = None) -> tuple[int, torch.Tensor]:
    """One epoch: a permutation of the images, then chunks of steps; returns (steps, loss sum).

    Images that do not fill the last batch are skipped this epoch (the permutation changes which).
    `on_steps(k)` is called after each chunk of k steps (progress bars).
    """
    b = runner.batch_size
    steps = num_images // b
    perm = torch.randperm(num_images, generator=generator, device=runner.device)
    runner.loss_sum.zero_()
    for first in range(0, steps, CHUNK_STEPS):
        k = min(CHUNK_STEPS, steps - first)
        runner.draw(perm[first * b : (first + k) * b], generator)
        runner.run(k)
        if on_steps is not None:
            on_steps(k)
    return steps, runner.loss_sum


def benchmark_steps(
    num_particles: int,
    steps: int = 300,
    warmup: int = 20,
    batch_size: int = 20,
    device: str = "auto",
    cuda_graphs: bool = True,
) -> dict[str, Any]:
    """Time training steps (random images, the real chunked step code) and return steps/s."""
    config = TrainConfig(
        num_particles=num_particles, batch_size=batch_size, device=device, cuda_graphs=cuda_graphs
    )
    dev = resolve_device(device)
    model = init_model(config, np.full(NUM_PIXELS, 0.13)).to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    images = 4 * CHUNK_STEPS * batch_size
    probs = torch.rand(images, NUM_PIXELS, generator=gen, device=dev) * 0.3
    runner = StepRunner(model, config, dev, use_graph=cuda_graphs, train_probs=probs)
    runner.prepare()

    def chunks(count: int) -> int:
        done = 0
        while done < count:
            k = min(CHUNK_STEPS, count - done)
            rows = torch.randint(images, (k * batch_size,), generator=gen, device=dev)
            runner.draw(rows, gen)
            runner.run(k)
            done += k
        return done

    chunks(max(warmup, 1))
    float(runner.loss_sum)  # waits for the device
    t0 = time.perf_counter()
    done = chunks(steps)
    float(runner.loss_sum)
    seconds = time.perf_counter() - t0
    return {
        "num_particles": num_particles,
        "batch_size": batch_size,
        "device": str(dev),
        "cuda_graphs": runner.graph is not None,
        "threads": torch.get_num_threads(),
        "steps": done,
        "seconds": seconds,
        "steps_per_second": done / seconds,
    }
