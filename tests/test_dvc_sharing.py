"""Sharing results DVC's way, through real `dvc` and a local-path remote.

Clone A runs the (reduced) pipeline and pushes its outputs and run cache (`dvc push --run-cache`)
without committing anything to git; clone B, from the same commit, fetches the run cache (`dvc
fetch --run-cache`) and `dvc repro --pull` restores every stage from it: none runs, and B ends
with A's dvc.lock and byte-identical outputs. Nothing either clone wrote names the mirror's folder.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import make_dvc_repo, run_dvc, tool_env

pytestmark = [pytest.mark.dvc, pytest.mark.mirror]

OUTPUT_FOLDERS = ("data", "plans", "checkpoints", "bitstreams", "metrics", "details", "docs")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=tool_env(), check=True, capture_output=True)


def _digests(repo: Path) -> dict[str, str]:
    """SHA-256 of every file the pipeline wrote (not the .gitignore files DVC or git manage)."""
    return {
        str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in OUTPUT_FOLDERS
        for path in sorted((repo / folder).rglob("*"))
        if path.is_file() and path.name != ".gitignore"
    }


def _reduced_origin(tmp_path: Path, mirror: Path, particles: list[int]) -> tuple[Path, dict[str, str]]:
    """A committed git+DVC repository of the pipeline on a reduced grid (emnist-mnist, `particles`,
    4 images) with a local-path remote `shared` as its default; and the environment to run it."""
    origin = make_dvc_repo(tmp_path / "origin")
    params = yaml.safe_load((origin / "params.yaml").read_text())
    params["num_particles"] = particles[-1]
    params["grid"] = {"datasets": ["emnist-mnist"], "particles": particles}
    params["tables"] = {"iterative_particles": [1]}
    params["evaluate"]["num_images"] = 4
    params["compress"]["num_compress"] = 4
    params["iterative"]["steps"] = 1
    (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env(MCBITS_MIRROR=str(mirror))
    run_dvc(origin, "remote", "add", "-d", "shared", str(tmp_path / "remote"), env=env)
    _git(origin, "add", "-A")
    _git(origin, "commit", "-qm", "pipeline, no results")
    return origin, env


def test_second_clone_restores_every_stage_from_the_run_cache(tmp_path, default_fixture_mirror):
    origin, env = _reduced_origin(tmp_path, default_fixture_mirror, [1])
    a, b = tmp_path / "a", tmp_path / "b"
    _git(tmp_path, "clone", "-q", str(origin), str(a))
    _git(tmp_path, "clone", "-q", str(origin), str(b))

    first = run_dvc(a, "repro", env=env).stdout
    stages = set(re.findall(r"Running stage '([^']+)'", first))
    assert {"prepare@emnist-mnist", "train@emnist-mnist-n-1", "aggregate", "figures"} <= stages, first
    assert len(stages) == 12, stages  # every stage of the reduced grid, each once
    run_dvc(a, "push", "--run-cache", env=env)

    run_dvc(b, "fetch", "--run-cache", env=env)
    second = run_dvc(b, "repro", "--pull", env=env).stdout
    assert "Running stage" not in second, second
    restored = set(re.findall(r"Stage '([^']+)' is cached - skipping run", second))
    assert restored == stages, second
    assert (b / "dvc.lock").read_text() == (a / "dvc.lock").read_text()
    assert _digests(b) == _digests(a)
    assert "docs/figures/rate_vs_particles.png" in _digests(b)  # the README's committed copy too

    # Outputs do not depend on where the artifacts came from: no file records the mirror's folder.
    for repo in (a, b):
        for name in [*_digests(repo), "dvc.lock"]:
            path = repo / name
            if path.suffix in (".json", ".csv", ".md", ".yaml", ".lock"):
                assert str(default_fixture_mirror) not in path.read_text(), name


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_two_workers_split_the_grid_and_a_third_clone_aggregates(tmp_path, default_fixture_mirror):
    # README "Splitting the grid across machines": each worker reproduces its own models' stages
    # (DVC targets with --glob) and pushes outputs and run cache to the shared remote; the
    # aggregating clone fetches the run cache, and `dvc repro --pull` restores what the workers
    # ran and runs only what no worker did.
    origin, env = _reduced_origin(tmp_path, default_fixture_mirror, [1, 5])
    clones = {name: tmp_path / name for name in ("worker1", "worker2", "aggregator")}
    for path in clones.values():
        _git(tmp_path, "clone", "-q", str(origin), str(path))

    worked = set()
    for worker, n in (("worker1", 1), ("worker2", 5)):
        out = run_dvc(clones[worker], "repro", "--glob", f"evaluate@n-{n}-*", f"compress*@*-n-{n}-*",
                      env=env).stdout
        ran = _ran(out)
        assert f"train@emnist-mnist-n-{n}" in ran and not {s for s in ran if f"-n-{6 - n}-" in s}, ran
        worked |= ran
        run_dvc(clones[worker], "push", "--run-cache", env=env)

    aggregator = clones["aggregator"]
    run_dvc(aggregator, "fetch", "--run-cache", env=env)
    out = run_dvc(aggregator, "repro", "--pull", env=env).stdout
    restored = set(re.findall(r"Stage '([^']+)' is cached - skipping run", out))
    assert {s for s in worked if not s.startswith(("prepare", "plan"))} <= restored, out
    # what no worker ran: the baselines, the headline, the tables and the figures
    assert _ran(out) <= {"baselines@test-emnist-mnist", "headline", "aggregate", "figures"}, out
    summary = (aggregator / "metrics/summary.json").read_text()
    assert '"is5"' in summary and '"elbo"' in summary and '"cis5"' in summary
    assert "Data and pipelines are up to date." in run_dvc(aggregator, "status", env=env).stdout
