"""The `mcbits` command line: coding images to bitstreams and back, fetching artifacts."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import click

from mcbits.errors import McbitsError


class _FriendlyGroup(click.Group):
    """Turns McbitsError into a clean message and exit code 1 (set MCBITS_TRACEBACK=1 for a traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            with _exit_cleanly_on_termination():
                return super().invoke(ctx)
        except McbitsError as err:
            if os.environ.get("MCBITS_TRACEBACK"):
                raise
            click.echo(f"error: {err}", err=True)
            sys.exit(1)


def _terminated(signum, frame) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _exit_cleanly_on_termination() -> Iterator[None]:
    """SIGTERM / SIGHUP (`kill`, a closed terminal) exit through Python, as Ctrl-C does, so every
    temporary a command holds is removed on the way out (SIGKILL's are removed by the next run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s]
    previous = {s: signal.signal(s, _terminated) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
