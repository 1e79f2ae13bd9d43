"""Training recipes against the IWAE paper: train candidates, print test NLL against wall time.

    python benchmarks/train_recipes.py --data data/prepared/mnist --recipes cos1 cos2 exp1 \
        --grid 5 50 --out benchmarks/results-train-recipes.jsonl --models-dir /tmp/models

Trains every named recipe with N = --particles (default 1) through the real trainer
(mcbits.vae.training.train_vae), estimates each model's test -log p(x) with k importance samples
on the whole test set (mcbits.vae.nll), then trains the particle counts of --grid with the recipe
that reached the lowest NLL. One JSON line per model (recipe, settings, seconds, steps/s, device,
NLL with standard error, the paper's figure and the gap) goes to --out; a table is printed last.
--budget-s skips models that would start after that many seconds (partial results stay).

The paper's figures (Burda, Grosse, Salakhutdinov, ICLR 2016, Table 1, one stochastic layer,
k = 5,000): VAE (N=1) 86.76, IWAE N=5 85.54, IWAE N=50 84.78 nats on dynamically binarized MNIST.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from mcbits.data.datasets import load_binarized, load_grayscale
from mcbits.vae.models import BinaryVAE
from mcbits.vae.nll import estimate_nll
from mcbits.vae.train_config import TrainConfig
from mcbits.vae.training import train_vae

PAPER_NLL = {1: 86.76, 5: 85.54, 50: 84.78}

# Candidates: every one is batch 100 with Adam (eps 1e-4), the paper's architecture and seed 42.
RECIPES: dict[str, dict[str, object]] = {
    "exp1": {"schedule": "exponential", "lr": 1e-3, "lr_end": 1e-4, "epochs": 500},
    "cos1": {"schedule": "cosine", "lr": 1e-3, "lr_end": 1e-5, "epochs": 500},
    "cos2": {"schedule": "cosine", "lr": 2e-3, "lr_end": 1e-5, "epochs": 500},
    "cos3": {"schedule": "cosine", "lr": 3e-3, "lr_end": 1e-5, "epochs": 500},
    "cos2-long": {"schedule": "cosine", "lr": 2e-3, "lr_end": 1e-5, "epochs": 1000},
    "cos2-short": {"schedule": "cosine", "lr": 2e-3, "lr_end": 1e-5, "epochs": 250},
    "tiny": {"schedule": "cosine", "lr": 2e-3, "lr_end": 1e-5, "epochs": 1},  # smoke test
}
BASE = {"batch_size": 100, "adam_eps": 1e-4, "test_images": 1000, "seed": 42}


def _config(recipe: str, num_particles: int, device: str, threads: int,
            epochs: int | None = None) -> TrainConfig:
    settings = {**BASE, **RECIPES[recipe], **({"epochs": epochs} if epochs else {})}
    config = TrainConfig(num_particles=num_particles, device=device, threads=threads, profile=recipe)
    return replace(config, **settings)


def _train_one(recipe: str, n: int, args: argparse.Namespace, train: np.ndarray, test: np.ndarray) -> dict:
    config = _config(recipe, n, args.device, args.threads, args.epochs)
    t0 = time.perf_counter()
    result = train_vae(train, test, config, progress=args.progress)
    train_wall = time.perf_counter() - t0
    model = BinaryVAE(config.latent_dim, config.hidden_dim)
    model.load_state_dict(result.best_state)
    device = torch.device(result.device)
    model = model.to(device).eval()
    t1 = time.perf_counter()
    nll = estimate_nll(model, test, num_samples=args.nll_samples, seed=0,
                       batch_size=args.nll_batch, sample_chunk=args.nll_chunk)
    row = {
        "recipe": recipe,
        "num_particles": n,
        "settings": {k: v for k, v in asdict(config).items() if k in {*BASE, *RECIPES[recipe]}},
        "train_seconds": round(train_wall, 2),
        "seconds_per_epoch": round(train_wall / config.epochs, 3),
        "steps_per_second": round(result.steps_per_second, 1),
        "best_epoch": result.best_epoch,
        "device": result.device,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else f"{platform.machine()} CPU, {os.cpu_count()} cores"),
        "cuda_graphs": result.cuda_graphs,
        "threads": result.threads,
        "nll": nll.summary(),
        "nll_seconds": round(time.perf_counter() - t1, 2),
        "paper_nats": PAPER_NLL.get(n),
        "gap_percent": (100.0 * (nll.nats / PAPER_NLL[n] - 1.0)) if n in PAPER_NLL else None,
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
    }
    if args.models_dir:
        folder = Path(args.models_dir)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.float() for k, v in result.best_state.items()}, folder / f"{recipe}-n{n}.pt")
    return row


def main() -> None:
    """Parse arguments, train the candidates then the grid, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prepared data set folder (train.npz, test.npz)")
    parser.add_argument("--recipes", nargs="+", default=["cos2"], choices=sorted(RECIPES))
    parser.add_argument("--particles", type=int, default=1, help="N of the candidates")
    parser.add_argument("--grid", type=int, nargs="*", default=[], help="N values for the winner")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--nll-samples", type=int, default=5000)
    parser.add_argument("--nll-batch", type=int, default=100)
    parser.add_argument("--nll-chunk", type=int, default=250)
    parser.add_argument("--test-images", type=int, default=None, help="NLL on the first K (default all)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipes' epochs (a timing run: seconds_per_epoch)")
    parser.add_argument("--budget-s", type=float, default=float("inf"))
    parser.add_argument("--out", default=None, help="append JSON lines here")
    parser.add_argument("--models-dir", default=None, help="save each model's best weights here")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()

    folder = Path(args.data)
    train, _, _ = load_grayscale(folder / "train.npz")
    test, _, _ = load_binarized(folder / "test.npz")
    test = test.reshape(test.shape[0], -1)[: args.test_images]
    start = time.perf_counter()
    rows: list[dict] = []

    def run(recipe: str, n: int) -> None:
        if time.perf_counter() - start > args.budget_s:
            print(f"skipped {recipe} N={n}: past the budget", flush=True)
            return
        row = _train_one(recipe, n, args, train, test)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")

    for recipe in args.recipes:
        run(recipe, args.particles)
    candidates = [r for r in rows if r["num_particles"] == args.particles]
    if args.grid and candidates:
        best = min(candidates, key=lambda r: r["nll"]["nats"])["recipe"]
        print(f"winner among {len(candidates)} candidates: {best}", flush=True)
        for n in args.grid:
            run(best, n)

    print(f"\n{'recipe':<11} {'N':>3} {'epochs':>6} {'train s':>8} {'steps/s':>8} "
          f"{'NLL nats':>14} {'paper':>6} {'gap':>7}")
    for r in rows:
        gap = f"{r['gap_percent']:+.2f}%" if r["gap_percent"] is not None else "-"
        print(f"{r['recipe']:<11} {r['num_particles']:>3} {r['settings']['epochs']:>6} "
              f"{r['train_seconds']:>8.1f} {r['steps_per_second']:>8.0f} "
              f"{r['nll']['nats']:>8.2f}±{r['nll']['std_error_nats']:.2f} "
              f"{r['paper_nats'] or '-':>6} {gap:>7}")


if __name__ == "__main__":
    main()
