"""Evaluate stage: ideal bitrates (negated variational bounds) of one model on one test set.

    python -m stages.evaluate --dataset emnist-mnist --particles 50 --testset emnist-letters

Reads the `evaluate` block (num_images, seed, cis_seed, batch_size, nll_samples) and
grid.particles (the particle counts in use). On the first `num_images` images of
data/prepared/<testset>/test.npz (a seeded random order, so a prefix is a random sample) it
estimates -ELBO, -joint (the stochastic coder's rate), -IWAE_N and the coupled -IWAE_N (BB-CIS)
for every N in grid.particles, and the model's quality: the test -log p(x) by importance sampling
with k = nll_samples (mcbits.vae.nll). Writes metrics/evaluate/<model>__<testset>.json (each bound
and the NLL in bits/dim, the NLL also in nats: the tracked metrics) and
details/evaluate/<model>__<testset>.json (nats, standard errors, samples, seeds, timing, SHA-256).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from mcbits.data.checksums import file_sha256
from mcbits.data.datasets import load_binarized
from mcbits.errors import McbitsError
from mcbits.vae.bounds import evaluate_bounds
from mcbits.vae.models import load_model
from mcbits.vae.nll import DEFAULT_SAMPLES, estimate_nll
from stages import paths
from stages._common import int_param, load_params, stage_main, write_details, write_log, write_metrics


def _positive_int(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise McbitsError(
            f"evaluate.{key} must be a positive integer, got {value!r}",
            where=f"parameter evaluate.{key}",
        )
    return value


def evaluate_item(
    dataset: str, num_particles: int, testset: str, params: dict[str, Any], particles: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compute the details of one (model, test set) item; return (details, timings)."""
    num_images = _positive_int(params, "num_images", 500)
    batch_size = _positive_int(params, "batch_size", 100)
    seed = params.get("seed", 0)
    cis_seed = params.get("cis_seed", seed)
    for key, value in (("seed", seed), ("cis_seed", cis_seed)):
        int_param(value, f"evaluate.{key}", maximum=(1 << 63) - 1)
    name = paths.model_name(dataset, num_particles)
    model_path = paths.model_path(dataset, num_particles)
    model = load_model(model_path)
    images, _, meta = load_binarized(paths.prepared_test(testset))
    available = int(images.shape[0])
    used = min(num_images, available)
    if used < num_images:
        print(
            f"warning: {testset} has {available} test images, fewer than evaluate.num_images="
            f"{num_images}; evaluating all {available}",
            file=sys.stderr,
        )
    counts = sorted({int(n) for n in particles} | {int(num_particles)})
    # One intra-op thread count for every run, so the figures do not depend on the machine's.
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    report = evaluate_bounds(
        model,
        images[:used],
        counts,
        seed=seed,
        batch_size=batch_size,
        cis_seed=cis_seed,
        progress=True,
    )
    nll_samples = _positive_int(params, "nll_samples", DEFAULT_SAMPLES)
    nll = estimate_nll(model.eval(), images[:used], num_samples=nll_samples, seed=seed,
                       batch_size=batch_size).summary()
    report["bounds"]["nll"] = {
        "nats": nll["nats"],
        "bits_per_dim": nll["bits_per_dim"],
        "std_error_nats": nll["std_error_nats"],
        "std_error_bits_per_dim": nll["std_error_bits_per_dim"],
        "num_particles": nll_samples,
        "samples": nll_samples * nll["num_images"],
    }
    return {
        "model": name,
        "train_dataset": dataset,
        "train_particles": int(num_particles),
        "testset": testset,
        "testset_display_name": meta.get("display_name", testset),
        "testset_subset": bool(meta.get("subset", False)),
        "in_distribution": testset == dataset,
        "num_images": report["num_images"],
        "num_images_requested": num_images,
        "seed": report["seed"],
        "cis_seed": report["cis_seed"],
        "batch_size": report["batch_size"],
        "dtype": report["dtype"],
        "particle_counts": counts,
        "nll_samples": nll_samples,
        "model_sha256": file_sha256(model_path),
        "bounds": report["bounds"],
    }, {"seconds": round(time.perf_counter() - t0, 3)}


@stage_main
def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m stages.evaluate`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="the model's training data set")
    parser.add_argument("--particles", required=True, type=int, help="the model's training N")
    parser.add_argument("--testset", required=True, help="the data set whose test images to use")
    args = parser.parse_args(argv)
    params = load_params("evaluate", "grid")
    particles = (params["grid"] or {}).get("particles") or []
    if not isinstance(particles, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in particles
    ):
        raise McbitsError(
            f"grid.particles must be a list of positive integers, got {particles!r}",
            where="parameter grid.particles",
        )
    details, timings = evaluate_item(
        args.dataset, args.particles, args.testset, params["evaluate"] or {}, particles
    )
    out = paths.evaluate_metrics(args.dataset, args.particles, args.testset)
    write_metrics(out, bound_metrics(details))
    write_details(paths.evaluate_details(args.dataset, args.particles, args.testset), details)
    write_log(paths.evaluate_log(args.dataset, args.particles, args.testset), timings)
    elbo = details["bounds"]["neg_elbo"]["bits_per_dim"]
    nll = details["bounds"]["nll"]
    print(f"{details['model']} on {args.testset}: -ELBO {elbo:.4f} bits/dim, -log p(x) "
          f"{nll['nats']:.2f} ± {nll['std_error_nats']:.2f} nats (k = {nll['num_particles']}) -> {out}")


def bound_metrics(details: dict[str, Any]) -> dict[str, Any]:
    """The tracked metrics of an evaluation: each negated bound and the NLL in bits/dim, the NLL
    also in nats per image (the unit of the IWAE paper); the rest is in details."""
    metrics = {name: b["bits_per_dim"] for name, b in details["bounds"].items()}
    if "nll" in details["bounds"]:
        metrics["nll_nats"] = details["bounds"]["nll"]["nats"]
    return metrics


if __name__ == "__main__":
    main()
