"""The coder table: every coder's canonical name, accepted spellings, short name, table label and
the bound its net rate approaches. The coders, the compress stage, the result tables and the
benchmark all read names from here, so a coder is spelled the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcbits.errors import McbitsError


@dataclass(frozen=True)
class CoderSpec:
    """One coder's names.

    name: upstream's class name (the canonical spelling, stored in bitstream headers).
    short: the paper's name, e.g. "BB-IS".
    aliases: other accepted spellings (lower case; `canonical_coder_name` also folds `_` to `-`).
    bound: the negated bound its net rate approaches, `{n}` standing for the particle count
        (names as in mcbits.vae.bounds.evaluate_bounds).
    particles: whether the coder takes N particles (its label then shows N).
    """

    name: str
    short: str
    aliases: tuple[str, ...]
    bound: str
    particles: bool

    def label(self, num_particles: int) -> str:
        """The name in tables and metrics: "BB-ELBO", "BB-IS (5)", "BB-CIS (50)"."""
        return f"{self.short} ({num_particles})" if self.particles else self.short

    def bound_name(self, num_particles: int) -> str:
        return self.bound.format(n=num_particles)


CODER_SPECS: tuple[CoderSpec, ...] = (
    CoderSpec("StochasticCoder", "Stochastic", ("stochasticcoder", "stochastic"), "neg_joint", False),
    CoderSpec("BitsBackCoder", "BB-ELBO", ("bitsbackcoder", "bb-elbo", "bbelbo", "elbo"), "neg_elbo",
              False),
    CoderSpec("ISBitsBackCoder", "BB-IS", ("isbitsbackcoder", "bb-is", "bbis", "is"), "neg_iwae_{n}",
              True),
    CoderSpec("CISBitsBackCoder", "BB-CIS", ("cisbitsbackcoder", "bb-cis", "bbcis", "cis"),
              "neg_coupled_iwae_{n}", True),
)

CODER_NAMES = tuple(spec.name for spec in CODER_SPECS)
CODER_ALIASES: dict[str, str] = {alias: spec.name for spec in CODER_SPECS for alias in spec.aliases}
SHORT_NAMES: dict[str, str] = {spec.name: spec.short for spec in CODER_SPECS}
_BY_NAME: dict[str, CoderSpec] = {spec.name: spec for spec in CODER_SPECS}


def canonical_coder_name(name: str) -> str:
    """Map any accepted spelling (upstream's class names, BB-ELBO, bb-is, ...) to upstream's name."""
    key = str(name).strip().lower().replace("_", "-")
    if key in CODER_ALIASES:
        return CODER_ALIASES[key]
    raise McbitsError(
        f"unknown coder {name!r}",
        where="parameter coder",
        remedy=f"use one of {', '.join(CODER_NAMES)} (or {', '.join(SHORT_NAMES.values())})",
    )


def coder_spec(name: str) -> CoderSpec:
    """The table row of a coder, by any accepted spelling."""
    return _BY_NAME[canonical_coder_name(name)]


def ideal_bound_name(coder: str, num_particles: int) -> str:
    """The negated bound a coder's net rate approaches (names as in mcbits.vae.bounds.evaluate_bounds)."""
    return coder_spec(coder).bound_name(num_particles)


def coder_label(coder: str, num_particles: int) -> str:
    """The coder's name in tables and metrics records, e.g. "BB-IS (5)"."""
    return coder_spec(coder).label(num_particles)
