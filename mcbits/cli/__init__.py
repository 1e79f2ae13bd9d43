"""The `mcbits` command line: `main` is the click group (the console script `mcbits.cli:main`),
`commands` the fetch subcommands, `codec` the encode and decode subcommands.
"""

from mcbits.cli.main import main

__all__ = ["main"]
