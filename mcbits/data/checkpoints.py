"""Upstream's published checkpoints: fetch model.pt and train_config.yml for (split, N), verified,
and install them as a model folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mcbits.atomic import atomic_folder, os_error, temporary_folder, write_bytes_atomic
from mcbits.data.checksums import file_sha256
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

    Both files are fetched into a scratch folder inside `dest_dir`, verified by SHA-256, and
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
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(err, dest_dir, "create") from err
    folder = checkpoint_folder(split, num_particles)
    names = [f"{folder}/model.pt", f"{folder}/train_config.yml"]
    # a scratch folder that a killed fetch leaves behind is removed by the next fetch here
    with temporary_folder(dest_dir / "model.pt") as tmp:
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


@dataclass(frozen=True)
class InstalledCheckpoint:
    """A published checkpoint installed as a model folder (model.pt, train_config.yml, config.yaml)."""

    folder: Path
    sha256: str  # of model.pt
    source: str  # URL or mirror path model.pt came from (not recorded in the folder)
    upstream_config: dict[str, Any]  # upstream's train_config.yml


def install_published_checkpoint(
    split: str,
    num_particles: int,
    dest: str | os.PathLike,
    *,
    description: dict[str, Any],
    latent_dim: int,
    check_model: Callable[[Path], object] | None = None,
    mirror: str | None = None,
) -> InstalledCheckpoint:
    """Fetch upstream's checkpoint for (split, N), check it, and install folder `dest` atomically.

    The folder holds model.pt and train_config.yml as published, and config.yaml: `description`
    followed by the model's sha256 and upstream's train configuration. `check_model(path)` may
    raise McbitsError for a model that does not load (shapes, non-finite values); upstream's
    configuration must name this split, N, the BinaryVAE and `latent_dim`. Nothing is installed
    when a check fails.
    """
    folder = checkpoint_folder(split, num_particles)
    where = f"published checkpoint {folder}"
    with atomic_folder(dest) as tmp:
        try:
            ckpt = fetch_published_checkpoint(split, int(num_particles), tmp, mirror=mirror)
        except McbitsError as err:
            # The fetch names a temporary folder; name the checkpoint instead.
            raise McbitsError(err.what, where=where, remedy=err.remedy) from err
        if check_model is not None:
            check_model(ckpt.model_path)
        upstream = _upstream_config(ckpt.config_path, where)
        checks = {"split": split, "num_particles": int(num_particles), "model": "BinaryVAE",
                  "latent_dim": int(latent_dim)}
        for key, want in checks.items():
            if upstream.get(key) != want:
                raise McbitsError(
                    f"train_config.yml says {key}={upstream.get(key)!r}, expected {want!r}",
                    where=where,
                    remedy="the file does not belong to this model: check the mirror's folders",
                )
        if file_sha256(ckpt.model_path) != ckpt.sha256:
            raise McbitsError("model.pt changed after verification", where=where, remedy="rerun")
        config = {**description, "sha256": ckpt.sha256, "upstream_train_config": upstream}
        write_bytes_atomic(tmp / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return InstalledCheckpoint(Path(dest), ckpt.sha256, ckpt.source, upstream)


def _upstream_config(path: Path, where: str) -> dict[str, Any]:
    try:
        upstream = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise McbitsError(
            f"train_config.yml is unreadable ({err})", where=where, remedy="re-fetch it"
        ) from err
    if not isinstance(upstream, dict):
        raise McbitsError("train_config.yml is not a mapping", where=where)
    return upstream
