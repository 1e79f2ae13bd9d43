"""Every path of the pipeline's folder layout, built here and nowhere else (dvc.yaml spells the
same layout for DVC; tests/test_dvc_deps.py and the stages' tests keep the two in step).

All paths are relative to the repository root, where DVC runs the stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

RAW_ROOT = Path("data/raw")
PREPARED_ROOT = Path("data/prepared")
CHECKPOINTS_ROOT = Path("checkpoints")
RESUME_ROOT = CHECKPOINTS_ROOT / ".resume"
METRICS_ROOT = Path("metrics")    # tracked metrics (dvc.yaml `metrics`) and the aggregate's tables
DETAILS_ROOT = Path("details")    # provenance of every item (outputs, not metrics)
LOGS_ROOT = Path("logs")          # timings and origins of the last run (no output, not in git)
PLANS_ROOT = Path("plans")        # the plan stage's decision for every model
BITSTREAMS_ROOT = Path("bitstreams")
FIGURES_ROOT = METRICS_ROOT / "figures"  # the figures stage's PNGs (cached, shared by the remote)
README_FIGURES = Path("docs/figures")    # the same PNGs, committed to git for the README


def model_name(dataset: str, num_particles: int) -> str:
    """The grid item's model name, e.g. `emnist-mnist-n50`."""
    return f"{dataset}-n{int(num_particles)}"


def raw_dir(dataset: str) -> Path:
    """data/raw/<dataset>: the verified idx files, as served."""
    return RAW_ROOT / dataset


def prepared_dir(dataset: str) -> Path:
    """data/prepared/<dataset>: test.npz, train.npz (optional), summary.json."""
    return PREPARED_ROOT / dataset


def prepared_test(dataset: str) -> Path:
    """data/prepared/<dataset>/test.npz: the binarized test images."""
    return prepared_dir(dataset) / "test.npz"


def prepared_train(dataset: str) -> Path:
    """data/prepared/<dataset>/train.npz: the grayscale training images."""
    return prepared_dir(dataset) / "train.npz"


def checkpoint_dir(dataset: str, num_particles: int) -> Path:
    """checkpoints/<dataset>-n<N>: where the train stage installs a model."""
    return CHECKPOINTS_ROOT / model_name(dataset, num_particles)


def model_path(dataset: str, num_particles: int) -> Path:
    """checkpoints/<dataset>-n<N>/model.pt."""
    return checkpoint_dir(dataset, num_particles) / "model.pt"


def resume_state(dataset: str, num_particles: int) -> Path:
    """checkpoints/.resume/<dataset>-n<N>.pt: a training run's resumable state."""
    return RESUME_ROOT / f"{model_name(dataset, num_particles)}.pt"


def prepare_details(dataset: str) -> Path:
    """details/prepare/<dataset>.json: where each raw file came from (kind and name, no folder)."""
    return DETAILS_ROOT / "prepare" / f"{dataset}.json"


def prepare_log(dataset: str) -> Path:
    """logs/prepare/<dataset>.json: where each raw file came from, and how long it took."""
    return LOGS_ROOT / "prepare" / f"{dataset}.json"


def train_plan(dataset: str, num_particles: int) -> Path:
    """plans/<model>.json: where the model comes from and, when trained, its settings."""
    return PLANS_ROOT / f"{model_name(dataset, num_particles)}.json"


def train_details(dataset: str, num_particles: int) -> Path:
    return DETAILS_ROOT / "train" / f"{model_name(dataset, num_particles)}.json"


def train_log(dataset: str, num_particles: int) -> Path:
    return LOGS_ROOT / "train" / f"{model_name(dataset, num_particles)}.json"


CURVES_FOLDER = "curves"  # checkpoints/<model>/curves/: DVCLive's per-epoch curves of a trained model


def curves_dir(dataset: str, num_particles: int) -> Path:
    """checkpoints/<model>/curves/ (metrics.json, plots/metrics/<curve>.tsv): only when trained."""
    return checkpoint_dir(dataset, num_particles) / CURVES_FOLDER


def curves_scratch(dataset: str, num_particles: int) -> Path:
    """Where DVCLive writes while the model trains (beside the resumable state)."""
    return RESUME_ROOT / f"{model_name(dataset, num_particles)}-curves"


def evaluate_metrics(dataset: str, num_particles: int, testset: str) -> Path:
    """metrics/evaluate/<model>__<testset>.json."""
    return METRICS_ROOT / "evaluate" / f"{model_name(dataset, num_particles)}__{testset}.json"


def evaluate_details(dataset: str, num_particles: int, testset: str) -> Path:
    return DETAILS_ROOT / "evaluate" / f"{model_name(dataset, num_particles)}__{testset}.json"


def evaluate_log(dataset: str, num_particles: int, testset: str) -> Path:
    return LOGS_ROOT / "evaluate" / f"{model_name(dataset, num_particles)}__{testset}.json"


HEADLINE_METRICS = METRICS_ROOT / "headline.json"
HEADLINE_DETAILS = DETAILS_ROOT / "headline.json"
HEADLINE_BITSTREAMS = BITSTREAMS_ROOT / "headline"
PLOTS_ROOT = METRICS_ROOT / "plots"  # plot data (CSV) of `dvc plots` and the figures


class CodingRun(NamedTuple):
    """The files of one coding run <kind>-n<N>_<train>_on_<test> (dvc.yaml spells the same names)."""

    bitstream: Path
    metrics: Path
    details: Path
    log: Path


def coding_run(kind: str, num_particles: int, train: str, test: str) -> CodingRun:
    name = f"{kind}-n{int(num_particles)}_{train}_on_{test}"
    return CodingRun(BITSTREAMS_ROOT / f"{name}.mcb", METRICS_ROOT / "compress" / f"{name}.json",
                     DETAILS_ROOT / "compress" / f"{name}.json", LOGS_ROOT / "compress" / f"{name}.json")
