"""The README's example commands do what its text says.

- The quickstart block ("Compress your own images") runs as written, in a fresh folder, and
  prints the lines the README shows under each command (the speed excepted). It needs the real
  data and checkpoint, so it runs where a mirror is set (CI sets one) and skips elsewhere.
- Every other command names things that exist: `mcbits` subcommands and their options, make
  targets, benchmark scripts and their options, params.yaml keys for `-S`, stage globs of
  dvc.yaml; and a `dvc exp run -S key=value` example sets a value other than the current one
  (otherwise the experiment reruns nothing).

What the pipeline commands then do (which stages run, what `dvc metrics diff` and `dvc exp show`
list, the run cache across clones) is asserted through real dvc by tests/test_pipeline_workflow.py
and tests/test_dvc_sharing.py.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from mcbits.cli import main as mcbits_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SPEED = re.compile(r"[0-9.]+ images/s")


@functools.cache
def dvc_stages() -> list[str]:
    """The stages dvc.yaml defines (its matrix expanded by dvc itself), not the lock's, which is
    only as current as the last repro."""
    listed = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def commands(block: str) -> list[tuple[str, list[str]]]:
    """(command line, the output lines shown under it as '#   ...' comments), continuation lines
    joined, trailing comments dropped."""
    found: list[tuple[str, list[str]]] = []
    pending = ""
    for raw in block.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if line.startswith("#   ") and found and not pending:
                found[-1][1].append(line[4:])
            continue
        if not line:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        text = re.sub(r"\s+#\s.*$", "", text).strip()
        found.append((text, []))
    return found


def all_commands() -> list[str]:
    return [cmd for block in bash_blocks(README) for cmd, _ in commands(block)]


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a line (split at && and ;) as token lists."""
    return [shlex.split(part) for part in re.split(r"&&|;", line) if part.strip()]


def test_the_readme_has_the_examples_this_test_checks():
    cmds = all_commands()
    assert len(cmds) >= 30, cmds
    heads = {tokens[0] for line in cmds for tokens in simple_commands(line)}
    assert {"make", "mcbits", "dvc", "python"} <= heads, heads


# -- the quickstart, run as written -----------------------------------------------------------

def quickstart_block() -> str:
    start = README.index("### Compress your own images")
    return bash_blocks(README[start:])[0]


@pytest.mark.skipif(not os.environ.get("MCBITS_MIRROR"), reason="the quickstart fetches the real "
                    "EMNIST test set and checkpoint: set MCBITS_MIRROR")
def test_the_quickstart_runs_as_written_and_prints_what_the_readme_shows(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MCBITS_CACHE": str(tmp_path / "cache")}
    steps = commands(quickstart_block())
    assert [cmd.split()[:2] for cmd, _ in steps][:3] == [["mcbits", "fetch"]] * 2 + [["mcbits", "encode"]]
    checked = 0
    for cmd, shown in steps:
        done = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (cmd, done.stderr[-2000:])
        if shown:
            printed = [SPEED.sub("N images/s", x) for x in done.stdout.strip().splitlines()]
            assert printed == [SPEED.sub("N images/s", x) for x in shown], cmd
            checked += 1
    assert checked >= 4
    assert sorted(p.name for p in (tmp_path / "decoded").iterdir()) == \
        sorted(p.name for p in (tmp_path / "digits").iterdir())


# -- every other command names things that exist ---------------------------------------------

def _mcbits_command(tokens: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = mcbits_cli
    rest = tokens[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"mcbits has no command {' '.join(tokens[:len(tokens) - len(rest) + 1])}"
        command, rest = sub, rest[1:]
    return command, rest


def _options_of(command: click.Command) -> set[str]:
    opts = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}
    return opts | {"--help"}


def _flags(tokens: list[str]) -> list[str]:
    return [t.strip("[]|").split("=")[0] for t in tokens if t.strip("[]|").startswith("--")]


def test_every_mcbits_example_names_a_real_command_and_options():
    seen = 0
    for line in all_commands():
        for tokens in simple_commands(line):
            if tokens[0] != "mcbits":
                continue
            command, rest = _mcbits_command(tokens)
            unknown = set(_flags(rest)) - _options_of(command)
            assert not unknown, f"README: `{line}` uses options {sorted(unknown)} that mcbits lacks"
            seen += 1
    assert seen >= 8


def test_every_make_and_benchmark_example_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    scripts = 0
    for line in all_commands():
        for tokens in simple_commands(line):
            env_free = [t for t in tokens if not re.match(r"^[A-Z_]+=", t)]
            if env_free[0] == "make":
                assert set(env_free[1:]) <= targets, line
            elif env_free[0] == "python" and env_free[1].endswith(".py"):
                script = ROOT / env_free[1]
                assert script.is_file(), line
                helped = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=120)
                assert helped.returncode == 0, helped.stderr
                for flag in _flags(env_free[2:]):
                    assert flag in helped.stdout, f"README: `{line}`: {script.name} has no {flag}"
                scripts += 1
    assert scripts >= 2


def _param(params: dict, dotted: str):
    node = params
    for key in dotted.split("."):
        assert isinstance(node, dict) and key in node, f"params.yaml has no {dotted}"
        node = node[key]
    return node


def test_every_dvc_example_names_real_parameters_and_stages_and_changes_something():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = dvc_stages()
    assert len(stages) > 40
    experiments = globs = 0
    for line in all_commands():
        for tokens in simple_commands(line):
            if tokens[:1] != ["dvc"]:
                continue
            changes = []
            for i, token in enumerate(tokens):
                if token == "-S":
                    key, _, value = tokens[i + 1].partition("=")
                    current = _param(params, key)
                    values = value.split(",") if "," in value and not value.startswith("[") else [value]
                    changes.append(all(yaml.safe_load(v) != current for v in values))
            if changes:
                # an experiment (each one of a comma grid) sets at least one parameter anew
                assert any(changes), f"README: `{line}` sets only current values: nothing reruns"
                experiments += 1
            if tokens[:2] == ["dvc", "repro"] and "--glob" in tokens:
                for pattern in tokens[tokens.index("--glob") + 1:]:
                    assert fnmatch.filter(stages, pattern), f"README: `{line}`: no stage matches {pattern}"
                    globs += 1
    assert experiments >= 5 and globs >= 2  # the README has that many; fewer means the parse broke


def test_the_stage_counts_the_readme_gives_are_dvc_yamls():
    listed = dvc_stages()
    counts = [int(n) for n in re.findall(r"(\d+) stages\b", README)]
    assert counts, "README: no stage count found"
    assert set(counts) == {len(listed)}, f"README says {counts} stages; dvc.yaml has {len(listed)}"
