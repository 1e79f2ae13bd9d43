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

OUTPUT_FOLDERS = ("data", "checkpoints", "bitstreams", "metrics", "details", "docs")


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


def test_second_clone_restores_every_stage_from_the_run_cache(tmp_path, default_fixture_mirror):
    origin = make_dvc_repo(tmp_path / "origin")
    params = yaml.safe_load((origin / "params.yaml").read_text())
    params["num_particles"] = 1
    params["grid"] = {"datasets": ["emnist-mnist"], "particles": [1]}
    params["tables"] = {"iterative_particles": [1]}
    params["evaluate"]["num_images"] = 4
    params["compress"]["num_compress"] = 4
    params["compress"]["iterative"]["steps"] = 1
    (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env(MCBITS_MIRROR=str(default_fixture_mirror))
    run_dvc(origin, "remote", "add", "-d", "shared", str(tmp_path / "remote"), env=env)
    _git(origin, "add", "-A")
    _git(origin, "commit", "-qm", "pipeline, no results")
    a, b = tmp_path / "a", tmp_path / "b"
    _git(tmp_path, "clone", "-q", str(origin), str(a))
    _git(tmp_path, "clone", "-q", str(origin), str(b))

    first = run_dvc(a, "repro", env=env).stdout
    stages = set(re.findall(r"Running stage '([^']+)'", first))
    assert {"prepare@emnist-mnist", "train@emnist-mnist-n-1", "aggregate", "figures"} <= stages, first
    assert len(stages) == 11, stages  # every stage of the reduced grid, each once
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
