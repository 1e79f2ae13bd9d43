"""What every stage shares: reading its params block, clean errors, atomic JSON metrics."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mcbits.atomic import write_text_atomic
from mcbits.errors import McbitsError, require_keys

PARAMS_FILE = Path("params.yaml")


def load_params(*blocks: str) -> dict[str, Any]:
    """Return the named top-level blocks (or scalars) of params.yaml as one dict keyed by block."""
    if not PARAMS_FILE.exists():
        raise McbitsError(
            f"{PARAMS_FILE} not found in {Path.cwd()}",
            where="stage parameters",
            remedy="run stages from the repository root (dvc repro does this)",
        )
    with open(PARAMS_FILE) as f:
        params = yaml.safe_load(f) or {}
    require_keys(params, blocks, "params.yaml has no", where=str(PARAMS_FILE),
                 remedy="restore the block from the repository's params.yaml")
    return {b: params[b] for b in blocks}


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON to a temporary name beside `path`, then rename, so a reader never sees half a file."""
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def stage_main(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a stage's entry point: McbitsError becomes a message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except McbitsError as err:
            if os.environ.get("MCBITS_TRACEBACK"):
                raise
            name = Path(sys.argv[0]).stem
            print(f"error in stage {name}: {err}", file=sys.stderr)
            sys.exit(1)

    return wrapper
