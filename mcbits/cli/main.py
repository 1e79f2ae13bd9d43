"""The `mcbits` command line: coding images to bitstreams and back, fetching artifacts."""

from __future__ import annotations

import os
import sys

import click

from mcbits.errors import McbitsError


class _FriendlyGroup(click.Group):
    """Turns McbitsError into a clean message and exit code 1 (set MCBITS_TRACEBACK=1 for a traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except McbitsError as err:
            if os.environ.get("MCBITS_TRACEBACK"):
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(1)


@click.group(cls=_FriendlyGroup)
@click.version_option(package_name="mcbits")
def main() -> None:
    """Monte Carlo bits-back coding with latent-variable models."""


def _register() -> None:
    # Subcommands live beside the code they drive; imported here so `mcbits --help` lists them all.
    from mcbits.cli import commands

    for command in commands.ALL:
        main.add_command(command)


_register()
