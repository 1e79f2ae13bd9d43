"""Training settings of a grid model from the `train` block: its source (imported or trained) and,
when trained, its TrainConfig. Shared by the plan stage (which decides) and the train stage."""

from __future__ import annotations

from typing import Any

from mcbits.errors import McbitsError
from mcbits.vae.train_config import TrainConfig
from stages._common import PUBLISHED_SPLITS, int_param

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
