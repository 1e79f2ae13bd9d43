"""What every stage shares: reading its params block, checking its values, clean errors, and the
two kinds of JSON it writes.

- Tracked metrics (`write_metrics`, dvc.yaml `metrics`): only the figures a researcher compares
  (rates, counts, the decode check), every float rounded to METRIC_DIGITS significant digits so
  that a rerun elsewhere writes identical bytes.
- Details (`write_details`, plain DVC outputs under details/): what the figures came from
  (labels, SHA-256s, versions, settings). A function of the inputs only: never a timing, a local
  path or where a verified file was fetched from, so that a rerun leaves dvc.lock as it was.
- Logs (`write_log`, logs/<stage>/<item>.json, not DVC outputs, not in git): how long it took and
  on what machine, where a file came from. Overwritten by every run; read by people, never by a stage.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mcbits.atomic import write_text_atomic
from mcbits.errors import McbitsError, require_keys

PARAMS_FILE = Path("params.yaml")
# Data sets with upstream's published checkpoints (data set -> upstream's split name); the others
# are trained from scratch (train.source: auto) and need their training set (prepare.train_data: auto).
PUBLISHED_SPLITS = {"emnist-mnist": "mnist", "emnist-letters": "letters"}
METRIC_DIGITS = 6  # significant digits of every float in a tracked metrics file


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


def round_floats(value: Any, digits: int = METRIC_DIGITS) -> Any:
    """`value` with every float (in dicts and lists, at any depth) rounded to `digits` significant
    digits; ints, bools, strings and None unchanged; NaN and infinities become None (JSON has none)."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(v, digits) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return round_floats(value.item(), digits)
    raise TypeError(f"not a metrics value: {value!r}")


def write_metrics(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a tracked metrics file: floats rounded (round_floats), keys in the given order."""
    write_json_atomic(path, round_floats(payload))


def write_details(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a details file (provenance; a DVC output, not a metric), with the versions of what
    produced it."""
    write_json_atomic(path, {**payload, "versions": versions()})


def write_log(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a run's log (timings, machine, origins: what varies between runs of the same inputs)."""
    machine = {"host_cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version()}
    write_json_atomic(path, {**payload, "machine": machine, "command": " ".join(sys.argv)})


def grid_items(grid: Any) -> list[tuple[str, int]]:
    """The (data set, particle count) of every grid model; McbitsError naming a bad grid.* value."""
    if not isinstance(grid, dict):
        raise McbitsError("grid must be a block with datasets and particles", where="params.yaml: grid")
    datasets, particles = grid.get("datasets"), grid.get("particles")
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
        raise McbitsError(f"grid.datasets must be a non-empty list of data set names, got {datasets!r}",
                          where="params.yaml: grid.datasets")
    if not isinstance(particles, list) or not particles:
        raise McbitsError(f"grid.particles must be a non-empty list of particle counts, got {particles!r}",
                          where="params.yaml: grid.particles")
    for n in particles:
        int_param(n, "grid.particles", minimum=1, maximum=1 << 16)
    return [(d, int(n)) for d in datasets for n in particles]


def versions() -> dict[str, str]:
    """Versions of the software that shapes a stage's outputs."""
    import numpy

    import mcbits

    found = {"mcbits": mcbits.__version__, "python": platform.python_version(), "numpy": numpy.__version__}
    torch = sys.modules.get("torch")  # only where the stage imported it
    if torch is not None:
        found["torch"] = torch.__version__
    return found


# An absolute path inside a message (after a space, a colon or an opening bracket, or at the start).
_LOCAL_PATH = re.compile(r"(?:(?<=[\s:(\[])|^)(/(?:[^/\s]+/)*)([^/\s]+)")


def portable_source(text: str) -> str:
    """A source description with local folders dropped: `mirror:/data/m/emnist/x.gz` becomes
    `mirror:x.gz`, `kept /repo/data/raw/x.gz` becomes `kept x.gz`; URLs are kept whole."""
    out = []
    for token in re.split(r"(\s+)", text):
        if "://" in token:
            out.append(token)
        else:
            out.append(_LOCAL_PATH.sub(lambda m: m.group(2), token))
    return "".join(out)


def int_param(value: Any, name: str, *, minimum: int = 0, maximum: int | None = None,
              remedy: str | None = None) -> int:
    """`value` if it is an integer in [minimum, maximum], else a McbitsError naming the parameter."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"between {minimum} and {maximum}" if maximum is not None else (
            "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}")
        raise McbitsError(f"{name} must be {bound}, got {value!r}", where=f"params.yaml: {name}",
                          remedy=remedy)
    return value


def num_images_param(value: Any, name: str, available: int, dataset: str) -> int:
    """A count of test images to use: an integer from 1 to the `available` images of `dataset`."""
    return int_param(value, name, minimum=1, maximum=available,
                     remedy=f"{dataset} has {available} test images: use 1..{available}")


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
            if "does not exist" in err.what or "delete it" in (err.remedy or ""):
                # the library names the file; in the pipeline, an earlier stage writes it
                print("in the pipeline: `dvc repro` (or `dvc repro -f <stage>` for a damaged output) "
                      "rebuilds what earlier stages write", file=sys.stderr)
            sys.exit(1)

    return wrapper
