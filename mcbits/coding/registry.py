"""The coder table: one `CoderSpec` per coder, the one home of everything the library knows about a
coder besides its class: names, label, the id in bitstream headers, the particle rule, the pops
per step behind the resource limits, the bound its net rate approaches and its family.

The coders, the config, the header, the limits, the ideal rates, the compress stage, the result
tables and the benchmark all read coders from here, so a new coder is its class, a row here and
its tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mcbits.coding import coders
from mcbits.errors import McbitsError


def _no_state(num_particles: int, latent_dim: int, lanes: int) -> int:
    return 0


@dataclasses.dataclass(frozen=True)
class CoderSpec:
    """One coder.

    cls: its class; cls.__name__ is the canonical name (upstream's, stored in bitstream headers).
    short: the paper's name, e.g. "BB-IS".
    aliases: other accepted spellings (lower case; `canonical_coder_name` also folds `_` to `-`).
    header_id: its number in a bitstream header's flags byte (never reuse or renumber one).
    bound: the negated bound its net rate approaches, `{n}` standing for the particle count
        (mcbits.vae.ideal computes each bound by this name).
    particles: whether the coder takes N particles (its label then shows N); a coder that does not
        codes exactly one.
    pops_per_step: (N, D) -> the most symbols one image's encoding step pops (its bits-back pops;
        the coder's step operations declare the same count, tests check they agree).
    state_bytes: (N, D, lanes) -> bytes the coder keeps beside the common per-step arrays.
    max_prop_mprec: the largest prop_mprec the coder codes (None: lprec bounds it).
    family: the family the coder belongs to (FAMILIES), if any.
    run: the short name of its runs in result summaries (`is` for BB-IS: mnist.is50.net).
    """

    cls: type[coders.Coder]
    short: str
    aliases: tuple[str, ...]
    header_id: int
    bound: str
    particles: bool
    pops_per_step: Callable[[int, int], int]
    state_bytes: Callable[[int, int, int], int] = _no_state
    max_prop_mprec: int | None = None
    family: str | None = None
    run: str = ""

    @property
    def name(self) -> str:
        return self.cls.__name__

    def label(self, num_particles: int) -> str:
        """The name in tables and metrics: "BB-ELBO", "BB-IS (5)", "BB-CIS (50)"."""
        return f"{self.short} ({num_particles})" if self.particles else self.short

    def bound_name(self, num_particles: int) -> str:
        return self.bound.format(n=num_particles)

    def accepts_particles(self, num_particles: int) -> bool:
        """The particle rule: N >= 1 particles, or exactly one for a coder without particles."""
        return num_particles >= 1 and (self.particles or num_particles == 1)


IS_FAMILY = "is-family"  # BB-ELBO for one particle, BB-IS(N) for more: the paper's Table 1 row
FAMILIES = (IS_FAMILY,)

CODER_SPECS: tuple[CoderSpec, ...] = (
    CoderSpec(coders.StochasticCoder, "Stochastic", ("stochasticcoder", "stochastic"), header_id=0,
              bound="neg_joint_discrete", particles=False, pops_per_step=lambda n, d: 0, run="stoch"),
    CoderSpec(coders.BitsBackCoder, "BB-ELBO", ("bitsbackcoder", "bb-elbo", "bbelbo", "elbo"), header_id=1,
              bound="neg_elbo", particles=False, pops_per_step=lambda n, d: d, family=IS_FAMILY, run="elbo"),
    CoderSpec(coders.ISBitsBackCoder, "BB-IS", ("isbitsbackcoder", "bb-is", "bbis", "is"), header_id=2,
              bound="neg_iwae_{n}", particles=True, pops_per_step=lambda n, d: n * d + 1,
              family=IS_FAMILY, run="is"),
    # its shifts (N x D) and base widths (lanes x D), 8 bytes each; its base uniform and offsets are
    # coded at prop_mprec in 64-bit arithmetic
    CoderSpec(coders.CISBitsBackCoder, "BB-CIS", ("cisbitsbackcoder", "bb-cis", "bbcis", "cis"), header_id=3,
              bound="neg_coupled_iwae_{n}", particles=True, pops_per_step=lambda n, d: d + 1,
              state_bytes=lambda n, d, lanes: 8 * n * d + 8 * lanes * d, max_prop_mprec=31, run="cis"),
)

CODER_NAMES = tuple(spec.name for spec in CODER_SPECS)
CODER_ALIASES: dict[str, str] = {alias: spec.name for spec in CODER_SPECS for alias in spec.aliases}
SHORT_NAMES: dict[str, str] = {spec.name: spec.short for spec in CODER_SPECS}
CODER_IDS: dict[str, int] = {spec.name: spec.header_id for spec in CODER_SPECS}
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
    """The negated bound a coder's net rate approaches (the name mcbits.vae.ideal reports)."""
    return coder_spec(coder).bound_name(num_particles)


def coder_label(coder: str, num_particles: int) -> str:
    """The coder's name in tables and metrics records, e.g. "BB-IS (5)"."""
    return coder_spec(coder).label(num_particles)


def family_coder(family: str, num_particles: int) -> str:
    """The coder of `family` for N particles: the first in the table whose particle rule takes N
    (is-family: BitsBackCoder for N = 1, ISBitsBackCoder for N > 1)."""
    for spec in CODER_SPECS:
        if spec.family == family and spec.accepts_particles(num_particles):
            return spec.name
    raise McbitsError(
        f"no coder of {family!r} codes {num_particles} particles", where="parameter coder",
        remedy=f"families: {', '.join(FAMILIES)}; or name a coder ({', '.join(CODER_NAMES)})",
    )


def is_family_coder(num_particles: int) -> str:
    """BB-ELBO (BitsBackCoder) for one particle, BB-IS (ISBitsBackCoder) for more."""
    return family_coder(IS_FAMILY, num_particles)


def resolve_coder(name: str, num_particles: int) -> str:
    """A coder name as given, with a family name (is-family) replaced by its coder for N particles."""
    return family_coder(name, num_particles) if name in FAMILIES else name
