"""Subcommands of the `mcbits` CLI. Each module that adds one lists it in ALL."""

from __future__ import annotations

import click

ALL: list[click.Command] = []
