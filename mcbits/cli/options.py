"""The coder options shared by `mcbits encode` and the coder benchmark: one list, CoderConfig's
defaults, so a flag means the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mcbits.coding.config import ARITHMETICS, CoderConfig

DEFAULTS = CoderConfig()
CONFIG_OPTIONS = ("coder", "num_particles", "lprec", "bprec", "log_num_bucket", "prior_mprec", "prop_mprec",
                  "cond_mprec", "mprec", "lanes", "seed", "no_whiten_prior", "arithmetic")

_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--coder", default=DEFAULTS.coder, show_default=True,
                 help="StochasticCoder, BitsBackCoder, ISBitsBackCoder or CISBitsBackCoder "
                 "(or Stochastic, BB-ELBO, BB-IS, BB-CIS)."),
    click.option("--num-particles", default=DEFAULTS.num_particles, show_default=True, type=int,
                 help="Particles N of BB-IS / BB-CIS."),
    click.option("--lprec", default=DEFAULTS.lprec, show_default=True, type=int,
                 help="rANS head lower bound 2^lprec."),
    click.option("--bprec", default=DEFAULTS.bprec, show_default=True, type=int,
                 help="Bits per tail word (8, 16 or 32)."),
    click.option("--log-num-bucket", default=DEFAULTS.log_num_bucket, show_default=True, type=int,
                 help="Latents coded as one of 2^this equal-mass buckets."),
    click.option("--prior-mprec", default=DEFAULTS.prior_mprec, show_default=True, type=int,
                 help="Precision of the prior over buckets."),
    click.option("--prop-mprec", default=DEFAULTS.prop_mprec, show_default=True, type=int,
                 help="Precision of the discretized posterior q(z|x)."),
    click.option("--cond-mprec", default=DEFAULTS.cond_mprec, show_default=True, type=int,
                 help="Precision of the pixel Bernoullis p(x|z)."),
    click.option("--mprec", default=DEFAULTS.mprec, show_default=True, type=int,
                 help="Precision of the categoricals over particle indices."),
    click.option("--lanes", default=DEFAULTS.lanes, show_default=True, type=int,
                 help="Independent rANS stacks coded in lock step (1 = one stack, as upstream)."),
    click.option("--seed", default=DEFAULTS.seed, show_default=True, type=int,
                 help="Coder seed: CIS shifts, prior whitening, refinement noise, initial words."),
    click.option("--no-whiten-prior", is_flag=True, help="Code latents with the plain prior (as upstream)."),
    click.option("--arithmetic", type=click.Choice(ARITHMETICS), default=DEFAULTS.arithmetic,
                 show_default=True,
                 help="exact: integer networks, the file decodes on any machine; float: only on this "
                 "machine's CPU and build (for comparison)."),
    click.option("--device", default="cpu", show_default=True,
                 help="Where exact arithmetic runs its matrix products (cpu, cuda, cuda:1, ...): the "
                 "bits are the same on every device."),
]


def coder_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add every coder option (and --device) to a click command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def config_from_options(values: dict[str, Any]) -> CoderConfig:
    """The validated CoderConfig of the options in `values` (a command's keyword arguments)."""
    fields = {k: values[k] for k in CONFIG_OPTIONS if k != "no_whiten_prior"}
    return CoderConfig(whiten_prior=not values["no_whiten_prior"], **fields).validated()
