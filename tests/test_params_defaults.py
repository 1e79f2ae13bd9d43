"""Defaults are defined once: params.yaml's `train` and `compress` scalars equal the library
defaults they mirror (TrainConfig, CoderConfig and the stages' own), so the pipeline, the CLI and
the benchmarks run the same settings unless someone changes one on purpose."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from mcbits.coding.config import CoderConfig
from mcbits.vae.train_config import TrainConfig
from stages import compress as compress_stage
from stages import train_settings

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


def _scalars(block: dict) -> dict:
    return {k: v for k, v in block.items() if not isinstance(v, (dict, list))}


def _mismatches(block: dict, defaults: dict) -> dict:
    """{key: (params.yaml value, default)} for every key of `block` whose default differs."""
    return {k: (v, defaults[k]) for k, v in block.items() if v != defaults[k]}


def test_train_block_equals_the_library_defaults():
    block = _scalars(PARAMS["train"])
    defaults = dataclasses.asdict(TrainConfig(num_particles=1))
    stage_only = {"source": train_settings.SOURCES[0], "mirror": None,
                  "profile": train_settings.DEFAULT_PROFILE}
    mismatched = _mismatches(block, {**defaults, **stage_only})
    assert not mismatched, f"params.yaml train vs library defaults (params, library): {mismatched}"
    # The paper profile is upstream's schedule, which TrainConfig's defaults are.
    paper = PARAMS["train"]["profiles"]["paper"]
    assert {k: defaults[k] for k in paper} == paper


def test_compress_block_equals_the_coder_defaults():
    block = _scalars(PARAMS["compress"])
    defaults = dataclasses.asdict(CoderConfig())
    stage_only = compress_stage.STAGE_DEFAULTS  # keys the stage reads that are not coder settings
    block.pop("num_compress")  # required, no default
    assert set(compress_stage.CODER_KEYS) <= set(defaults)
    mismatched = _mismatches(block, {**defaults, **stage_only})
    assert not mismatched, f"params.yaml compress vs library defaults (params, library): {mismatched}"
    assert set(block) == set(compress_stage.CODER_KEYS) | set(stage_only)


def test_the_cli_encodes_with_the_coder_defaults():
    from mcbits.cli.codec import encode_command

    options = {p.name: p.default for p in encode_command.params}
    defaults = CoderConfig()
    for name in ("coder", "num_particles", "lprec", "bprec", "log_num_bucket", "prior_mprec",
                 "prop_mprec", "cond_mprec", "mprec", "lanes", "seed"):
        assert options[name] == getattr(defaults, name), name
    assert defaults.whiten_prior  # the CLI flag --no-whiten-prior turns it off
