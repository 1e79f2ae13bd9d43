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
METRICS_ROOT = Path("metrics")
BITSTREAMS_ROOT = Path("bitstreams")


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


def train_metrics(dataset: str, num_particles: int) -> Path:
    return METRICS_ROOT / "train" / f"{model_name(dataset, num_particles)}.json"


def train_history(dataset: str, num_particles: int) -> Path:
    return METRICS_ROOT / "train_history" / f"{model_name(dataset, num_particles)}.csv"


def evaluate_metrics(dataset: str, num_particles: int, testset: str) -> Path:
    """metrics/evaluate/<model>__<testset>.json."""
    return METRICS_ROOT / "evaluate" / f"{model_name(dataset, num_particles)}__{testset}.json"


HEADLINE_METRICS = METRICS_ROOT / "headline.json"
HEADLINE_BITSTREAMS = BITSTREAMS_ROOT / "headline"
