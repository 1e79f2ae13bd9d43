"""Upstream's published checkpoints: fetch model.pt and train_config.yml for (split, N), verified."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mcbits.data.fetch import ArtifactUnavailable, fetch_files
from mcbits.data.registry import CHECKPOINTS_ARTIFACT, PUBLISHED_CHECKPOINTS, checkpoint_folder
from mcbits.errors import McbitsError


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A published upstream checkpoint placed on disk after verification."""

    model_path: Path
    config_path: Path
    sha256: str  # of model.pt
    source: str  # URL or mirror path model.pt came from


def fetch_published_checkpoint(
    split: str, num_particles: int, dest_dir: Path, mirror: str | None = None
) -> PublishedCheckpoint:
    """Place upstream's model.pt and train_config.yml for (split, N) in `dest_dir`, both verified.

    Both files are fetched into a temporary folder inside `dest_dir`, verified by SHA-256, and
    only then renamed to `dest_dir/model.pt` and `dest_dir/train_config.yml`.
    """
    if (split, num_particles) not in PUBLISHED_CHECKPOINTS:
        known = ", ".join(f"{s} N={n}" for s, n in PUBLISHED_CHECKPOINTS)
        raise McbitsError(
            f"no published checkpoint for split={split!r}, num_particles={num_particles}",
            where="published checkpoints",
            remedy=f"upstream published: {known}; train other models from scratch",
        )
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    folder = checkpoint_folder(split, num_particles)
    names = [f"{folder}/model.pt", f"{folder}/train_config.yml"]
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest_dir) as tmp:
        try:
            model, config = fetch_files(CHECKPOINTS_ARTIFACT, names, tmp, mirror=mirror)
        except ArtifactUnavailable as err:
            err.where = str(dest_dir)  # not the temporary folder, which is gone by now
            raise
        model_path, config_path = dest_dir / "model.pt", dest_dir / "train_config.yml"
        os.replace(config.path, config_path)
        os.replace(model.path, model_path)
    source = (
        model.source.split(":", 1)[1]
        if model.source.startswith(("mirror:", "cache:"))
        else model.source
    )
    return PublishedCheckpoint(model_path, config_path, model.sha256, source)
