"""Train stage: one BinaryVAE per (data set, particle count), imported or trained from scratch.

    python -m stages.train --dataset emnist-mnist --particles 50

Reads the `train` block of params.yaml:
- source: auto (default) imports upstream's checkpoint where one exists (emnist-mnist,
  emnist-letters) and trains from scratch otherwise (mnist, fashion-mnist), so one grid can mix
  both; published always imports, train always trains. Importing fetches through
  mcbits.data.checkpoints (mirror or upstream URL, SHA-256 verified); training reads
  data/prepared/<dataset>/train.npz (prepare.train_data: auto or true) and runs the profile
  `profile` (train.profiles.<profile>: fast, the default, or paper).
- device (auto | cpu | cuda), threads, seed, latent_dim, hidden_dim, cuda_graphs, mirror.

Writes checkpoints/<name>/model.pt (state dict; the best test loss when trained), last.pt
(trained only), config.yaml (the full resolved configuration), metrics/train/<name>.json (the
best test loss in bits/dim and its epoch; empty when imported: there was no training),
details/train/<name>.json (source, SHA-256, settings, timings, versions) and
metrics/train_history/<name>/ (history.csv, the per-epoch losses, when trained; empty when
imported, so that no empty training curve is drawn).
A training run keeps a resumable state in checkpoints/.resume/<name>.pt: a killed run, rerun,
continues from its last finished epoch and ends with the same weights.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from mcbits.atomic import atomic_folder, write_bytes_atomic, write_text_atomic
from mcbits.data import checkpoints, registry
from mcbits.data.checksums import file_sha256
from mcbits.data.datasets import load_binarized, load_grayscale
from mcbits.errors import McbitsError
from mcbits.vae.models import load_model
from mcbits.vae.train_config import TrainConfig
from mcbits.vae.training import TrainResult, train_vae
from stages import paths
from stages._common import (
    PUBLISHED_SPLITS,
    int_param,
    load_params,
    stage_main,
    write_details,
    write_metrics,
)

SOURCES = ("auto", "published", "train")  # the first is the default
DEFAULT_PROFILE = "fast"
TRAIN_DEFAULTS = TrainConfig(num_particles=1)
PROFILE_KEYS = ("epochs", "batch_size", "lr", "lr_end", "schedule", "adam_eps", "test_images")


def resolved_source(source: str, dataset: str) -> str:
    """`published` or `train` for this data set: auto imports where a checkpoint exists."""
    if source not in SOURCES:
        raise McbitsError(
            f"unknown train.source {source!r}",
            where="parameter train.source",
            remedy="use auto (published where it exists, else trained), published or train",
        )
    if source == "auto":
        return "published" if dataset in PUBLISHED_SPLITS else "train"
    return source
HISTORY_FIELDS = ("epoch", "lr", "train_bpd", "test_bpd", "train_nats", "test_nats", "seconds")


# Curves logged per epoch through DVCLive (metrics.json and plots/metrics/<name>.tsv, x = step =
# epoch - 1): what `dvc plots` and the figures stage draw.
CURVES = ("train_bpd", "test_bpd", "lr")


class TrainingLog:
    """Per-epoch training curves written live through DVCLive into `folder` (a DVC output).

    Rows restored from a resumed run are logged again first, so a killed and resumed stage still
    ends with every epoch's curve.
    """

    def __init__(self, folder: Path):
        from dvclive import Live  # imported here: imported models never need it

        folder.mkdir(parents=True, exist_ok=True)
        # No dvc.yaml of its own (the pipeline's declares the plots) and no experiment of its own
        # (dvc exp run makes the experiment); no report, no system monitoring.
        self.live = Live(dir=str(folder), save_dvc_exp=False, dvcyaml=False, report=None)

    def __call__(self, row: dict[str, float]) -> None:
        for name in CURVES:
            self.live.log_metric(name, float(row[name]))
        self.live.next_step()

    def close(self) -> None:
        self.live.end()


def _empty_history(folder: Path) -> None:
    """An imported model has no training curves: an empty folder (no empty plot is drawn)."""
    with atomic_folder(folder):
        pass


def _origin(source: str, split: str, num_particles: int) -> str:
    """Where a published checkpoint came from, without a local folder: its URL, or the name it has
    in any mirror or download cache."""
    if "://" in source:
        return source
    return f"local copy of {registry.checkpoint_folder(split, num_particles)}/model.pt (mirror or cache)"


def _state_dict_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.to(torch.float32) for k, v in state.items()}, buf)
    return buf.getvalue()


def import_published(dataset: str, num_particles: int, params: dict[str, Any]) -> dict[str, Any]:
    """Fetch, verify and install upstream's checkpoint for this item; return its details."""
    name = paths.model_name(dataset, num_particles)
    if dataset not in PUBLISHED_SPLITS:
        raise McbitsError(
            f"no published checkpoint exists for data set {dataset!r} (upstream published "
            f"{', '.join(PUBLISHED_SPLITS)} only)",
            where=f"parameter train.source=published, model {name}",
            remedy="train it from scratch: set train.source=train and prepare.train_data=true",
        )
    split = PUBLISHED_SPLITS[dataset]
    latent_dim = int(params.get("latent_dim", TRAIN_DEFAULTS.latent_dim))
    hidden_dim = int(params.get("hidden_dim", TRAIN_DEFAULTS.hidden_dim))
    bound = "ELBO" if int(num_particles) == 1 else "IWAE"
    description = {
        "model": "BinaryVAE",
        "dataset": dataset,
        "split": split,
        "num_particles": int(num_particles),
        "bound": bound,
        "latent_dim": latent_dim,
        "hidden_dim": hidden_dim,
        "source": "published",
    }
    try:
        installed = checkpoints.install_published_checkpoint(
            split, int(num_particles), paths.checkpoint_dir(dataset, num_particles),
            description=description, latent_dim=latent_dim, mirror=params.get("mirror"),
            # shapes and finite values: load_model raises a McbitsError naming the problem
            check_model=lambda path: load_model(path, latent_dim=latent_dim, hidden_dim=hidden_dim),
        )
    except McbitsError as err:
        raise McbitsError(
            err.what, where=f"{err.where} for model {name} (train.source=published)", remedy=err.remedy
        ) from err
    return {
        "model": name,
        "dataset": dataset,
        "num_particles": int(num_particles),
        "bound": bound,
        "source": "published",
        "origin": _origin(installed.source, split, int(num_particles)),
        "sha256": installed.sha256,
        "upstream_epochs": installed.upstream_config.get("epochs"),
        "latent_dim": latent_dim,
        "hidden_dim": hidden_dim,
    }


def _typed(block: dict[str, Any], kinds: dict[str, type]) -> dict[str, Any]:
    """The keys of `block` that are in `kinds`, each converted (None stays None)."""
    return {k: None if block[k] is None else kind(block[k]) for k, kind in kinds.items() if k in block}


def train_config(num_particles: int, params: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a grid item from the train block and its selected profile."""
    int_param(params.get("seed", TRAIN_DEFAULTS.seed), "train.seed", maximum=(1 << 63) - 1)
    profile = str(params.get("profile", DEFAULT_PROFILE))
    profiles = params.get("profiles") or {}
    if profile not in profiles:
        raise McbitsError(
            f"training profile {profile!r} is not defined",
            where="parameter train.profile",
            remedy=f"use one of: {', '.join(profiles) or '(none: add train.profiles)'}",
        )
    block = profiles[profile] or {}
    unknown = sorted(set(block) - set(PROFILE_KEYS))
    if unknown:
        raise McbitsError(
            f"unknown keys in train.profiles.{profile}: {', '.join(unknown)}",
            where=f"parameter train.profiles.{profile}",
            remedy=f"allowed: {', '.join(PROFILE_KEYS)}",
        )
    try:
        # Absent keys take TrainConfig's defaults (the values params.yaml spells out).
        config = TrainConfig(
            num_particles=int(num_particles),
            profile=profile,
            **_typed(block, {"epochs": int, "batch_size": int, "lr": float, "lr_end": float,
                             "schedule": str, "adam_eps": float, "test_images": int}),
            **_typed(params, {"seed": int, "latent_dim": int, "hidden_dim": int, "device": str,
                              "cuda_graphs": bool, "threads": int}),
        )
    except (TypeError, ValueError) as err:
        raise McbitsError(
            f"a training parameter has the wrong type ({err})",
            where=f"parameters train / train.profiles.{profile}",
        ) from err
    config.validate()
    return config


def train_from_scratch(
    dataset: str, num_particles: int, params: dict[str, Any], progress: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train this item's model (resuming a killed run), install it; return (metrics, details)."""
    name = paths.model_name(dataset, num_particles)
    config = train_config(num_particles, params)
    train_path = paths.prepared_train(dataset)
    test_path = paths.prepared_test(dataset)
    if not train_path.exists():
        raise McbitsError(
            f"training from scratch needs the training set {train_path}, which does not exist",
            where=f"model {name}, train.source=train",
            remedy="set prepare.train_data: true (or auto) and rerun (dvc repro); EMNIST has no "
            "reachable training set here: train on mnist or fashion-mnist",
        )
    train_images, _, train_meta = load_grayscale(train_path)
    test_images, _, test_meta = load_binarized(test_path)
    state_path = paths.resume_state(dataset, num_particles)
    log = TrainingLog(paths.train_history_dir(dataset, num_particles))
    try:
        result: TrainResult = train_vae(
            train_images, test_images, config, state_path=state_path, progress=progress, on_epoch=log
        )
    finally:
        log.close()

    model_bytes = _state_dict_bytes(result.best_state)
    bound = "ELBO" if config.num_particles == 1 else "IWAE"
    # Upstream's key names first (so upstream's code can read it), then mcbits' own.
    resolved = {
        "model": "BinaryVAE",
        "dataset": dataset,
        "num_particles": config.num_particles,
        "bound": bound,
        "latent_dim": config.latent_dim,
        "hidden_dim": config.hidden_dim,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "eps": config.adam_eps,
        "optimizer": "Adam",
        "scheduler": {"iwae": "multi_step"}.get(config.schedule, config.schedule),
        "lr_end": config.lr_end,
        "binarize": True,
        "seed": config.seed,
        "source": "train",
        "profile": config.profile,
        "training": config.to_dict(),
        "device": result.device,
        "train_data": {k: train_meta.get(k) for k in ("dataset", "num_images", "display_name")},
        "test_data": {k: test_meta.get(k) for k in ("dataset", "num_images", "display_name")},
        "best_epoch": result.best_epoch,
    }
    with atomic_folder(paths.checkpoint_dir(dataset, num_particles)) as folder:
        write_bytes_atomic(folder / "model.pt", model_bytes)
        write_bytes_atomic(folder / "last.pt", _state_dict_bytes(result.last_state))
        write_text_atomic(folder / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    # A sanity check that what was installed loads (and is finite) before anyone relies on it.
    load_model(paths.model_path(dataset, num_particles))
    last = result.history[-1]
    best = result.history[result.best_epoch - 1]
    metrics = {"best_test_bpd": best["test_bpd"], "best_epoch": result.best_epoch}
    details = {
        "model": name,
        "dataset": dataset,
        "num_particles": config.num_particles,
        "bound": bound,
        "source": "train",
        "profile": config.profile,
        "profile_note": (
            "upstream's settings (the paper's schedule)"
            if config.profile == "paper"
            else f"{config.profile} profile: NOT the paper's training length; "
            f"{config.epochs} epochs, {config.schedule} schedule"
        ),
        "epochs": config.epochs,
        "best_epoch": result.best_epoch,
        "best_test_bits_per_dim": best["test_bpd"],
        "last_test_bits_per_dim": last["test_bpd"],
        "last_train_bits_per_dim": last["train_bpd"],
        "test_images": int(min(len(test_images), config.test_images or len(test_images))),
        "train_images": int(len(train_images)),
        "train_seconds": result.train_seconds,
        "steps_per_second": result.steps_per_second,
        "resumed_from_epoch": result.resumed_from_epoch,
        "device": result.device,
        "cuda_graphs": result.cuda_graphs,
        "threads": result.threads,
        "sha256": file_sha256(paths.model_path(dataset, num_particles)),
    }
    return metrics, details


@stage_main
def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m stages.train`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="data set id, e.g. emnist-mnist")
    parser.add_argument("--particles", required=True, type=int, help="training particles N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    params = load_params("train")["train"] or {}
    source = resolved_source(params.get("source", SOURCES[0]), args.dataset)
    name = paths.model_name(args.dataset, args.particles)
    t0 = time.perf_counter()
    if source == "published":
        # The training parameters are tracked for every item (a grid can mix sources), so a bad
        # one is refused here too, by name, rather than accepted because nothing trains.
        train_config(args.particles, params)
        metrics, details = {}, import_published(args.dataset, args.particles, params)
        _empty_history(paths.train_history_dir(args.dataset, args.particles))
    else:
        metrics, details = train_from_scratch(args.dataset, args.particles, params,
                                              progress=not args.no_progress)
    details["stage_seconds"] = round(time.perf_counter() - t0, 3)
    write_metrics(paths.train_metrics(args.dataset, args.particles), metrics)
    write_details(paths.train_details(args.dataset, args.particles), details)
    # Only once every output is in place: a kill before this line resumes rather than retrains.
    paths.resume_state(args.dataset, args.particles).unlink(missing_ok=True)
    print(f"{name}: {source} model installed in {paths.checkpoint_dir(args.dataset, args.particles)}")


if __name__ == "__main__":
    main()
