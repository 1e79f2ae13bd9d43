"""The coder options shared by `mcbits encode` and the coder benchmark: one list, CoderConfig's
defaults, so a flag means the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mcbits.coding.config import ARITHMETICS, CoderConfig
from mcbits.coding.registry import CODER_NAMES, SHORT_NAMES

DEFAULTS = CoderConfig()
CONFIG_OPTIONS = ("coder", "num_particles", "lprec", "bprec", "log_num_bucket", "prior_mprec", "prop_mprec",
                  "cond_mprec", "mprec", "lanes", "seed", "no_whiten_prior", "arithmetic")

# (flag, CoderConfig field, help) of the integer options
_INT_OPTIONS = (
    ("--num-particles", "num_particles", "Particles N of BB-IS / BB-CIS."),
    ("--lprec", "lprec", "rANS head lower bound 2^lprec."),
    ("--bprec", "bprec", "Bits per tail word (8, 16 or 32)."),
    ("--log-num-bucket", "log_num_bucket", "Latents coded as one of 2^this equal-mass buckets."),
    ("--prior-mprec", "prior_mprec", "Precision of the prior over buckets."),
    ("--prop-mprec", "prop_mprec", "Precision of the discretized posterior q(z|x)."),
    ("--cond-mprec", "cond_mprec", "Precision of the pixel Bernoullis p(x|z)."),
    ("--mprec", "mprec", "Precision of the categoricals over particle indices."),
    ("--lanes", "lanes", "Independent rANS stacks coded in lock step (1 = one stack, as upstream)."),
    ("--seed", "seed", "Coder seed: CIS shifts, prior whitening, refinement noise, initial words."),
)

_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--coder", default=DEFAULTS.coder, show_default=True,
                 help=f"{', '.join(CODER_NAMES[:-1])} or {CODER_NAMES[-1]} "
                 f"(or {', '.join(SHORT_NAMES.values())})."),
    *(click.option(flag, field, default=getattr(DEFAULTS, field), show_default=True, type=int, help=text)
      for flag, field, text in _INT_OPTIONS),
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


def force_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The --force flag of every command that writes an output (see mcbits.outputs)."""
    return click.option("--force", is_flag=True, help=help_text)
