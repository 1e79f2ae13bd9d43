"""Every path of the pipeline's folder layout, built here and nowhere else (dvc.yaml spells the
same layout for DVC; tests/test_dvc_deps.py and the stages' tests keep the two in step).

All paths are relative to the repository root, where DVC runs the stages.
"""

from __future__ import annotations

from pathlib import Path

RAW_ROOT = Path("data/raw")
PREPARED_ROOT = Path("data/prepared")
CHECKPOINTS_ROOT = Path("checkpoints")
RESUME_ROOT = CHECKPOINTS_ROOT / ".resume"
METRICS_ROOT = Path("metrics")    # tracked metrics (dvc.yaml `metrics`) and the aggregate's tables
DETAILS_ROOT = Path("details")    # provenance and timings of every item (outputs, not metrics)
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


def train_metrics(dataset: str, num_particles: int) -> Path:
    """metrics/train/<model>.json: the best test loss of a trained model (empty when imported)."""
    return METRICS_ROOT / "train" / f"{model_name(dataset, num_particles)}.json"


def train_details(dataset: str, num_particles: int) -> Path:
    return DETAILS_ROOT / "train" / f"{model_name(dataset, num_particles)}.json"


TRAIN_HISTORY_ROOT = METRICS_ROOT / "train_history"


def train_history_dir(dataset: str, num_particles: int) -> Path:
    """metrics/train_history/<model>/: DVCLive's curves (metrics.json, plots/metrics/*.tsv) when
    the model was trained, empty when imported (so `dvc plots` and the figures show no curve for a
    model that has none)."""
    return TRAIN_HISTORY_ROOT / model_name(dataset, num_particles)


def evaluate_metrics(dataset: str, num_particles: int, testset: str) -> Path:
    """metrics/evaluate/<model>__<testset>.json."""
    return METRICS_ROOT / "evaluate" / f"{model_name(dataset, num_particles)}__{testset}.json"


def evaluate_details(dataset: str, num_particles: int, testset: str) -> Path:
    return DETAILS_ROOT / "evaluate" / f"{model_name(dataset, num_particles)}__{testset}.json"


def details_for(metrics_file: str | Path) -> Path:
    """The details file beside a metrics file: metrics/<kind>/<name>.json -> details/<kind>/<name>.json."""
    return DETAILS_ROOT / Path(metrics_file).relative_to(METRICS_ROOT)


HEADLINE_METRICS = METRICS_ROOT / "headline.json"
HEADLINE_DETAILS = DETAILS_ROOT / "headline.json"
HEADLINE_BITSTREAMS = BITSTREAMS_ROOT / "headline"
PLOTS_ROOT = METRICS_ROOT / "plots"  # plot data (CSV) of `dvc plots` and the figures
