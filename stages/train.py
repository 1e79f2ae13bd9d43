"""Train stage: one BinaryVAE per (data set, particle count), imported or trained from scratch.

    python -m stages.train --dataset emnist-mnist --particles 50

Reads the `train` block of params.yaml:
- source: published (default) installs upstream's checkpoint for (split, N), fetched through
  mcbits.data.checkpoints (mirror or upstream URL, SHA-256 verified); only emnist-mnist and
  emnist-letters have one. train: trains from scratch on data/prepared/<dataset>/train.npz
  (needs prepare.train_data: true) with the profile `profile` (train.profiles.<profile>).
- device (auto | cpu | cuda), threads, seed, latent_dim, hidden_dim, cuda_graphs, mirror.

Writes checkpoints/<name>/model.pt (state dict; the best test loss when trained), last.pt
(trained only), config.yaml (the full resolved configuration), metrics/train/<name>.json and
metrics/train_history/<name>.csv (per-epoch losses in bits/dim; only the header when imported).
A training run keeps a resumable state in checkpoints/.resume/<name>.pt: a killed run, rerun,
continues from its last finished epoch and ends with the same weights.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from mcbits.atomic import write_text_atomic
from mcbits.data import checkpoints, registry
from mcbits.data.datasets import load_binarized, load_grayscale
from mcbits.errors import McbitsError
from mcbits.vae.models import load_model
from mcbits.vae.training import TrainConfig, TrainResult, train_vae
from stages._common import load_params, stage_main, write_json_atomic

# The published checkpoints exist for these data sets only (upstream's EMNIST splits).
PUBLISHED_SPLITS = {"emnist-mnist": "mnist", "emnist-letters": "letters"}
SOURCES = ("published", "train")
PROFILE_KEYS = ("epochs", "batch_size", "lr", "adam_eps", "test_images")
HISTORY_FIELDS = ("epoch", "lr", "train_bpd", "test_bpd", "train_nats", "test_nats", "seconds")

CHECKPOINTS_DIR = Path("checkpoints")
RESUME_DIR = CHECKPOINTS_DIR / ".resume"
PREPARED_DIR = Path("data/prepared")
METRICS_DIR = Path("metrics/train")
HISTORY_DIR = Path("metrics/train_history")


def model_name(dataset: str, num_particles: int) -> str:
    """The grid item's model name, e.g. `emnist-mnist-n50`."""
    return f"{dataset}-n{int(num_particles)}"


def checkpoint_dir(dataset: str, num_particles: int) -> Path:
    """Where the train stage installs a model (model.pt, config.yaml)."""
    return CHECKPOINTS_DIR / model_name(dataset, num_particles)


def _install_dir(dest: Path, files: dict[str, bytes]) -> None:
    """Replace folder `dest` by one holding `files`, built beside it and renamed into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_history(path: Path, rows: list[dict[str, float]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in HISTORY_FIELDS})
    write_text_atomic(path, out.getvalue())


def _state_dict_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.to(torch.float32) for k, v in state.items()}, buf)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def import_published(dataset: str, num_particles: int, params: dict[str, Any]) -> dict[str, Any]:
    """Fetch, verify and install upstream's checkpoint for this item; return its metrics."""
    name = model_name(dataset, num_particles)
    if dataset not in PUBLISHED_SPLITS:
        raise McbitsError(
            f"no published checkpoint exists for data set {dataset!r} (upstream published "
            f"{', '.join(PUBLISHED_SPLITS)} only)",
            where=f"parameter train.source=published, model {name}",
            remedy="train it from scratch: set train.source=train and prepare.train_data=true",
        )
    split = PUBLISHED_SPLITS[dataset]
    latent_dim, hidden_dim = int(params.get("latent_dim", 50)), int(params.get("hidden_dim", 200))
    CHECKPOINTS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".fetch-{name}-", dir=CHECKPOINTS_DIR) as tmp:
        where = f"published checkpoint {registry.checkpoint_folder(split, num_particles)}"
        try:
            ckpt = checkpoints.fetch_published_checkpoint(
                split, int(num_particles), Path(tmp), mirror=params.get("mirror")
            )
        except McbitsError as err:
            # The fetch names its temporary folder; the user needs the model and the parameter.
            raise McbitsError(
                err.what, where=f"{where} for model {name} (train.source=published)", remedy=err.remedy
            ) from err
        # Shapes and finite values: load_model raises a McbitsError naming the problem.
        load_model(ckpt.model_path, latent_dim=latent_dim, hidden_dim=hidden_dim)
        try:
            upstream = yaml.safe_load(Path(ckpt.config_path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise McbitsError(
                f"train_config.yml is unreadable ({err})", where=where, remedy="re-fetch it"
            ) from err
        if not isinstance(upstream, dict):
            raise McbitsError("train_config.yml is not a mapping", where=where)
        checks = {
            "split": split,
            "num_particles": int(num_particles),
            "model": "BinaryVAE",
            "latent_dim": latent_dim,
        }
        for key, want in checks.items():
            if upstream.get(key) != want:
                raise McbitsError(
                    f"train_config.yml says {key}={upstream.get(key)!r}, expected {want!r}",
                    where=where,
                    remedy="the file does not belong to this model: check the mirror's folders",
                )
        model_bytes = Path(ckpt.model_path).read_bytes()
        config_text = Path(ckpt.config_path).read_text()
    if _sha256(model_bytes) != ckpt.sha256:
        raise McbitsError("model.pt changed after verification", where=where, remedy="rerun")
    bound = "ELBO" if int(num_particles) == 1 else "IWAE"
    config = {
        "model": "BinaryVAE",
        "dataset": dataset,
        "split": split,
        "num_particles": int(num_particles),
        "bound": bound,
        "latent_dim": latent_dim,
        "hidden_dim": hidden_dim,
        "source": "published",
        "sha256": ckpt.sha256,
        "upstream_train_config": upstream,
    }
    _install_dir(
        checkpoint_dir(dataset, num_particles),
        {
            "model.pt": model_bytes,
            "train_config.yml": config_text.encode(),
            "config.yaml": yaml.safe_dump(config, sort_keys=False).encode(),
        },
    )
    return {
        "model": name,
        "dataset": dataset,
        "num_particles": int(num_particles),
        "bound": bound,
        "source": "published",
        "origin": ckpt.source,
        "sha256": ckpt.sha256,
        "upstream_epochs": upstream.get("epochs"),
        "latent_dim": latent_dim,
        "hidden_dim": hidden_dim,
    }


def train_config(num_particles: int, params: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a grid item from the train block and its selected profile."""
    profile = str(params.get("profile", "paper"))
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
        config = TrainConfig(
            num_particles=int(num_particles),
            epochs=int(block.get("epochs", 3280)),
            batch_size=int(block.get("batch_size", 20)),
            lr=float(block.get("lr", 1e-3)),
            adam_eps=float(block.get("adam_eps", 1e-4)),
            test_images=None if block.get("test_images") is None else int(block["test_images"]),
            seed=int(params.get("seed", 42)),
            latent_dim=int(params.get("latent_dim", 50)),
            hidden_dim=int(params.get("hidden_dim", 200)),
            device=str(params.get("device", "auto")),
            cuda_graphs=bool(params.get("cuda_graphs", True)),
            threads=int(params.get("threads", 1)),
            profile=profile,
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
) -> dict[str, Any]:
    """Train this item's model (resuming a killed run), install it, return its metrics."""
    name = model_name(dataset, num_particles)
    config = train_config(num_particles, params)
    train_path = PREPARED_DIR / dataset / "train.npz"
    test_path = PREPARED_DIR / dataset / "test.npz"
    if not train_path.exists():
        raise McbitsError(
            f"training from scratch needs the training set {train_path}, which does not exist",
            where=f"model {name}, train.source=train",
            remedy="set prepare.train_data: true and rerun (dvc repro); EMNIST has no reachable "
            "training set here: train on mnist or fashion-mnist",
        )
    train_images, _, train_meta = load_grayscale(train_path)
    test_images, _, test_meta = load_binarized(test_path)
    state_path = RESUME_DIR / f"{name}.pt"
    result: TrainResult = train_vae(
        train_images, test_images, config, state_path=state_path, progress=progress
    )

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
        "scheduler": "multi_step",
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
    _install_dir(
        checkpoint_dir(dataset, num_particles),
        {
            "model.pt": model_bytes,
            "last.pt": _state_dict_bytes(result.last_state),
            "config.yaml": yaml.safe_dump(resolved, sort_keys=False).encode(),
        },
    )
    # A sanity check that what was installed loads (and is finite) before anyone relies on it.
    load_model(checkpoint_dir(dataset, num_particles) / "model.pt")
    _write_history(HISTORY_DIR / f"{name}.csv", result.history)
    last = result.history[-1]
    best = result.history[result.best_epoch - 1]
    metrics = {
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
            f"{config.epochs} epochs of the IWAE schedule"
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
        "torch_version": torch.__version__,
        "sha256": _sha256(model_bytes),
    }
    return metrics


@stage_main
def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m stages.train`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="data set id, e.g. emnist-mnist")
    parser.add_argument("--particles", required=True, type=int, help="training particles N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    params = load_params("train")["train"] or {}
    source = params.get("source", "published")
    if source not in SOURCES:
        raise McbitsError(
            f"unknown train.source {source!r}",
            where="parameter train.source",
            remedy="use published (import upstream's checkpoints) or train (from scratch)",
        )
    name = model_name(args.dataset, args.particles)
    t0 = time.perf_counter()
    if source == "published":
        metrics = import_published(args.dataset, args.particles, params)
        _write_history(HISTORY_DIR / f"{name}.csv", [])
    else:
        metrics = train_from_scratch(args.dataset, args.particles, params, progress=not args.no_progress)
    metrics["stage_seconds"] = time.perf_counter() - t0
    write_json_atomic(METRICS_DIR / f"{name}.json", metrics)
    # Only once every output is in place: a kill before this line resumes rather than retrains.
    (RESUME_DIR / f"{name}.pt").unlink(missing_ok=True)
    print(f"{name}: {source} model installed in {checkpoint_dir(args.dataset, args.particles)}")


if __name__ == "__main__":
    main()
