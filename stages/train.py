"""Train stage: one BinaryVAE per (data set, particle count), imported or trained from scratch.

    python -m stages.train --dataset emnist-mnist --particles 50

Reads plans/<name>.json, the model's plan (the plan stage resolves the `train` block into it):
source `published` imports upstream's checkpoint through mcbits.data.checkpoints (mirror or
upstream URL, SHA-256 verified; train.mirror and MCBITS_MIRROR say where to look, untracked);
source `train` trains from data/prepared/<dataset>/train.npz with the plan's configuration.

Writes checkpoints/<name>/ (model.pt: the state dict, the best test loss when trained; config.yaml:
the full resolved configuration; when trained also last.pt and curves/, DVCLive's per-epoch
curves) and details/train/<name>.json (source, SHA-256, settings, best test loss: a function of
the inputs only). How long it took goes to logs/train/<name>.json (not a DVC output).
A training run keeps a resumable state in checkpoints/.resume/<name>.pt: a killed run, rerun,
continues from its last finished epoch and ends with the same weights.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
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
from stages._common import load_params, stage_main, write_details, write_log

# Curves logged per epoch through DVCLive (metrics.json and plots/metrics/<name>.tsv, x = step =
# epoch - 1): what `dvc plots` and the figures stage draw.
CURVES = ("train_bpd", "test_bpd", "lr")


class TrainingLog:
    """Per-epoch training curves written live through DVCLive into `folder` (copied into the
    checkpoint folder when the model is installed).

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


def import_published(plan: dict[str, Any], mirror: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fetch, verify and install upstream's checkpoint for this plan; return (details, log): where
    it came from goes to the log, since a mirror and a download give the same verified bytes."""
    name, dataset, num_particles = plan["model"], plan["dataset"], int(plan["num_particles"])
    split = plan["split"]
    latent_dim, hidden_dim = int(plan["latent_dim"]), int(plan["hidden_dim"])
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
            description=description, latent_dim=latent_dim, mirror=mirror,
            # shapes and finite values: load_model raises a McbitsError naming the problem
            check_model=lambda path: load_model(path, latent_dim=latent_dim, hidden_dim=hidden_dim),
        )
    except McbitsError as err:
        raise McbitsError(
            err.what, where=f"{err.where} for model {name} (train.source=published)", remedy=err.remedy
        ) from err
    details = {
        "model": name,
        "dataset": dataset,
        "num_particles": int(num_particles),
        "bound": bound,
        "source": "published",
        "sha256": installed.sha256,
        "upstream_epochs": installed.upstream_config.get("epochs"),
        "latent_dim": latent_dim,
        "hidden_dim": hidden_dim,
    }
    return details, {"origin": _origin(installed.source, split, int(num_particles))}


def train_from_scratch(plan: dict[str, Any], progress: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train this plan's model (resuming a killed run), install it; return (details, timings)."""
    name, dataset, num_particles = plan["model"], plan["dataset"], int(plan["num_particles"])
    config = TrainConfig(**plan["training"])
    config.validate()
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
    curves = paths.curves_scratch(dataset, num_particles)
    log = TrainingLog(curves)
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
        shutil.copytree(curves, folder / paths.CURVES_FOLDER)
    shutil.rmtree(curves)
    # A sanity check that what was installed loads (and is finite) before anyone relies on it.
    load_model(paths.model_path(dataset, num_particles))
    last = result.history[-1]
    best = result.history[result.best_epoch - 1]
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
        "device": result.device,
        "cuda_graphs": result.cuda_graphs,
        "threads": result.threads,
        "sha256": file_sha256(paths.model_path(dataset, num_particles)),
    }
    timings = {"train_seconds": result.train_seconds, "steps_per_second": result.steps_per_second,
               "resumed_from_epoch": result.resumed_from_epoch}
    return details, timings


def read_plan(dataset: str, num_particles: int) -> dict[str, Any]:
    """The model's plan, written by the plan stage; McbitsError if it is missing or for another model."""
    path = paths.train_plan(dataset, num_particles)
    if not path.exists():
        raise McbitsError(f"{path} does not exist", where=f"model {paths.model_name(dataset, num_particles)}",
                          remedy="run the plan stage first (dvc repro does)")
    plan = json.loads(path.read_text())
    if (plan.get("dataset"), plan.get("num_particles")) != (dataset, int(num_particles)):
        raise McbitsError(f"{path} plans another model ({plan.get('model')!r})", where=str(path),
                          remedy="rerun the plan stage (dvc repro -f plan)")
    return plan


@stage_main
def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m stages.train`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="data set id, e.g. emnist-mnist")
    parser.add_argument("--particles", required=True, type=int, help="training particles N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    plan = read_plan(args.dataset, args.particles)
    t0 = time.perf_counter()
    if plan["source"] == "published":
        # where to look is no input (every file is verified by SHA-256): read, not tracked
        mirror = (load_params("train")["train"] or {}).get("mirror")
        details, timings = import_published(plan, mirror)
    else:
        details, timings = train_from_scratch(plan, progress=not args.no_progress)
    write_details(paths.train_details(args.dataset, args.particles), details)
    write_log(paths.train_log(args.dataset, args.particles),
              {**timings, "stage_seconds": round(time.perf_counter() - t0, 3)})
    # Only once every output is in place: a kill before this line resumes rather than retrains.
    paths.resume_state(args.dataset, args.particles).unlink(missing_ok=True)
    print(f"{plan['model']}: {plan['source']} model installed in "
          f"{paths.checkpoint_dir(args.dataset, args.particles)}")


if __name__ == "__main__":
    main()
