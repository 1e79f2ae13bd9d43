"""CoderConfig: every parameter that shapes the coded bits, with its defaults and validation."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from mcbits.coding.arithmetic import BY_NAME as ARITHMETIC_BY_NAME
from mcbits.coding.rans import validate_precisions
from mcbits.coding.registry import CODER_SPECS, canonical_coder_name, coder_spec
from mcbits.errors import McbitsError

ARITHMETICS = tuple(ARITHMETIC_BY_NAME)  # "exact", "float"
MAX_PARTICLES = 4096  # bounds memory: particles x lanes x latents tables per step
MAX_LANES = 65536


@dataclasses.dataclass(frozen=True)
class CoderConfig:
    """Every parameter that shapes the coded bits. These defaults are the one set: the CLI and the
    benchmark take theirs from here, and callers with their own copy are tested against them."""

    coder: str = "BitsBackCoder"
    num_particles: int = 1
    lprec: int = 32
    bprec: int = 32
    log_num_bucket: int = 8
    prior_mprec: int = 8
    prop_mprec: int = 16  # as upstream: with zero-width buckets 16 bits sit on the bound (README "Precision")
    cond_mprec: int = 16
    mprec: int = 16  # categoricals over particle indices (upstream: 10; 16 closes BB-IS(50)'s gap)
    seed: int = 0  # CIS shifts, stochastic samples, prior whitening, the message's virtual words
    lanes: int = 1
    # Shift each prior-coded bucket by a seeded offset (mod K): free under the uniform prior, and it
    # makes the bits the next image's posterior pops from uniform (see Coder.prior_offsets).
    whiten_prior: bool = True
    # "exact": integer networks and tables, a file decodes identically on any machine (see
    # mcbits.coding.exact); "float": the model's float outputs, decodable only where encoded.
    arithmetic: str = "exact"

    def validated(self) -> CoderConfig:
        """Return the config with a canonical coder name, or raise McbitsError naming the bad value."""
        cfg = dataclasses.replace(self, coder=canonical_coder_name(self.coder))
        for name in ("num_particles", "lprec", "bprec", "log_num_bucket", "prior_mprec",
                     "prop_mprec", "cond_mprec", "mprec", "lanes", "seed"):
            value = getattr(cfg, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise McbitsError(f"{name}={value!r} must be an integer", where=f"parameter {name}")
        if not isinstance(cfg.whiten_prior, (bool, np.bool_)):
            raise McbitsError(f"whiten_prior={cfg.whiten_prior!r} must be true or false",
                              where="parameter whiten_prior")
        if cfg.arithmetic not in ARITHMETICS:
            raise McbitsError(f"arithmetic={cfg.arithmetic!r} is not one of {', '.join(ARITHMETICS)}",
                              where="parameter arithmetic",
                              remedy="use exact (portable, the default) or float (same machine only)")
        validate_precisions(cfg.lprec, cfg.bprec)
        if cfg.num_particles > MAX_PARTICLES:
            raise McbitsError(
                f"num_particles={cfg.num_particles} is above the limit of {MAX_PARTICLES}",
                where="parameter num_particles",
                remedy=f"use at most {MAX_PARTICLES} particles",
            )
        if cfg.arithmetic == "exact":
            for name, top in (("mprec", 32), ("cond_mprec", 39)):
                if getattr(cfg, name) > top:
                    raise McbitsError(
                        f"exact arithmetic codes {name} <= {top}, got {getattr(cfg, name)}",
                        where=f"parameter {name}",
                        remedy=f"lower {name} (default {getattr(CoderConfig, name)})",
                    )
        if cfg.num_particles < 1:
            raise McbitsError(
                f"num_particles={cfg.num_particles} must be at least 1", where="parameter num_particles"
            )
        spec = coder_spec(cfg.coder)
        if not spec.accepts_particles(cfg.num_particles):
            with_particles = " / ".join(s.name for s in CODER_SPECS if s.particles)
            raise McbitsError(
                f"{cfg.coder} uses one latent sample, not num_particles={cfg.num_particles}",
                where="parameter num_particles",
                remedy=f"set num_particles=1, or use {with_particles} for N > 1",
            )
        if spec.max_prop_mprec is not None and cfg.prop_mprec > spec.max_prop_mprec:
            raise McbitsError(
                f"{cfg.coder} needs prop_mprec <= {spec.max_prop_mprec}, got {cfg.prop_mprec}",
                where="parameter prop_mprec",
                remedy="its uniforms are coded at prop_mprec with 64-bit arithmetic",
            )
        if not 1 <= cfg.log_num_bucket <= 16:
            raise McbitsError(
                f"log_num_bucket={cfg.log_num_bucket} is outside 1..16", where="parameter log_num_bucket"
            )
        if not 1 <= cfg.lanes <= MAX_LANES:
            raise McbitsError(f"lanes={cfg.lanes} must be in 1..{MAX_LANES}", where="parameter lanes")
        if not 0 <= cfg.seed < 1 << 63:
            raise McbitsError(f"seed={cfg.seed} must be in 0..2^63 - 1", where="parameter seed",
                              remedy="use a non-negative seed below 2^63")
        for name, low in (
            ("prior_mprec", cfg.log_num_bucket),
            ("prop_mprec", cfg.log_num_bucket + 1),
            ("cond_mprec", 1),
            ("mprec", max(1, math.ceil(math.log2(cfg.num_particles)))),
        ):
            value = getattr(cfg, name)
            if not low <= value <= cfg.lprec:
                raise McbitsError(
                    f"{name}={value} is outside {low}..lprec={cfg.lprec}",
                    where=f"parameter {name}",
                    remedy=f"use {low} <= {name} <= lprec (upstream: lprec 32, log_num_bucket 8, "
                    "prior_mprec 8, prop_mprec 16, cond_mprec 16, mprec 10)",
                )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise McbitsError(
                f"unknown coder parameter(s): {', '.join(unknown)}",
                remedy=f"known parameters: {', '.join(sorted(known))}",
            )
        return cls(**values).validated()
