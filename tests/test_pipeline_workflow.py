"""The whole pipeline through real `dvc`, reduced, in a temporary git repository.

From published checkpoints (mirror), one data set, particle counts 1 and 5, a few images: every
stage runs once, a second `dvc repro` does nothing, `dvc exp run -S num_particles=1` reruns only
the headline stage, an edit to an imported module makes exactly the stages that import it out of
date, and a precision change reruns the coding stages and the tables but never
training or evaluation; `dvc metrics diff` then shows the net-rate change per run.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, make_dvc_repo, run_dvc, tool_env
from test_dvc_deps import import_closure, stage_module

pytestmark = [pytest.mark.dvc, pytest.mark.mirror]


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _importers(module: str) -> set[str]:
    """The dvc.yaml stages whose command imports `module` (from the code, as test_dvc_deps)."""
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    return {name for name, spec in stages.items()
            if Path(module) in import_closure(stage_module(spec["cmd"]))}


def _stale_after_edit(repo, module: str, env) -> set[str]:
    """Append a comment to `module` in the repo copy; return the stages (matrix items folded to
    their stage) that `dvc status` then flags; restore the file."""
    path = repo / module
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        out = run_dvc(repo, "status", "--json", env=env).stdout  # stderr merged: skip any warning
        status, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    finally:
        path.write_bytes(original)
    return {name.split("@")[0] for name in status}


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, env=tool_env(), check=True, capture_output=True)


def test_reduced_pipeline_and_experiments(tmp_path, default_fixture_mirror):
    repo = make_dvc_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["num_particles"] = 5
    params["grid"] = {"datasets": ["emnist-mnist"], "particles": [1, 5]}
    params["tables"] = {"iterative_particles": [1]}
    params["evaluate"]["num_images"] = 6
    params["compress"]["num_compress"] = 6
    params["compress"]["iterative"]["steps"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env(MCBITS_MIRROR=str(default_fixture_mirror))

    first = run_dvc(repo, "repro", env=env)
    ran = _ran(first.stdout)
    for stage in ("prepare@emnist-mnist", "train@emnist-mnist-1", "train@emnist-mnist-5",
                  "evaluate@emnist-mnist-5-emnist-mnist", "compress@5-emnist-mnist-emnist-mnist",
                  "compress_cis@5", "compress_if@1-emnist-mnist", "headline",
                  "baselines@emnist-mnist", "aggregate"):
        assert stage in ran, f"{stage} did not run:\n{first.stdout[-3000:]}"
    runs = [json.loads(p.read_text()) for p in sorted((repo / "metrics/compress").glob("*.json"))]
    assert len(runs) == 6  # BB-ELBO, BB-IS(5), BB-CIS(1), BB-CIS(5), BB-ELBO-IF, Stochastic
    assert all(r["decode_check"] == "passed" for r in runs)
    assert all(0.1 < r["net_bpd"] < 0.5 for r in runs if r["coder"] != "StochasticCoder")
    assert all(0.4 < r["net_bpd"] < 1.0 for r in runs if r["coder"] == "StochasticCoder")  # no bits back
    tables = (repo / "metrics/tables.md").read_text()
    assert "BB-IS (5)" in tables and "BB-CIS" in tables and "gzip" in tables
    for run in runs:  # every figure in the tables comes from a metrics file
        if run["coder"] not in ("CISBitsBackCoder", "StochasticCoder"):
            assert f"{run['net_bpd']:.4f}" in tables

    again = run_dvc(repo, "repro", env=env)
    assert not _ran(again.stdout), again.stdout
    assert "up to date" in again.stdout

    # An edit to an imported module makes exactly the stages that import it out of date.
    for module in ("mcbits/data/datasets.py", "stages/_common.py", "mcbits/results/tables.py"):
        assert _stale_after_edit(repo, module, env) == _importers(module), module

    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline run")

    headline = run_dvc(repo, "exp", "run", "-S", "num_particles=1", env=env)
    assert _ran(headline.stdout) == {"headline"}, headline.stdout
    assert json.loads((repo / "metrics/headline.json").read_text())["num_particles"] == 1
    shown = run_dvc(repo, "exp", "show", "--csv", env=env).stdout
    assert "bb_is.net_bpd" in shown.splitlines()[0]

    _git(repo, "checkout", "-q", "--", ".")
    precision = run_dvc(repo, "exp", "run", "-S", "compress.prop_mprec=12", env=env)
    ran = _ran(precision.stdout)
    assert "aggregate" in ran and "headline" in ran
    assert {s for s in ran if s.startswith("compress")} == {
        "compress@1-emnist-mnist-emnist-mnist", "compress@5-emnist-mnist-emnist-mnist",
        "compress_cis@1", "compress_cis@5", "compress_if@1-emnist-mnist", "compress_stochastic"}
    assert not {s for s in ran if s.split("@")[0] in ("prepare", "train", "evaluate", "baselines")}

    diff = run_dvc(repo, "metrics", "diff", env=env).stdout
    assert "metrics/compress/is-n5_emnist-mnist_on_emnist-mnist.json" in diff
    assert "net_bpd" in diff
