"""The whole pipeline through real `dvc`, reduced, in a temporary git repository.

From published checkpoints (mirror), one data set, particle counts 1 and 5, a few images: every
stage runs once without a warning, a second `dvc repro` does nothing, a forced rerun of everything
leaves dvc.lock and `git status` as they were, `-S train.profile=paper` reruns only the plan (and
`=nope` is refused by name), `dvc exp run -S num_particles=1` reruns only the headline stage (and
`-S num_particles=0` fails in the stage, naming the parameter), an edit to an imported module makes
exactly the stages that import it out of date, and a precision change reruns the coding stages,
the tables and the figures but never training or evaluation; `dvc metrics diff` then shows rates
only, and `dvc exp show --only-changed`, one view per table, every changed rate at 120 columns.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, make_dvc_repo, run_dvc, tool_env
from test_dvc_deps import import_closure, stage_module

from stages._common import round_floats

pytestmark = [pytest.mark.dvc, pytest.mark.mirror]

CODING_STAGES = {
    "compress@is-n-1-train-emnist-mnist-test-emnist-mnist",
    "compress@is-n-5-train-emnist-mnist-test-emnist-mnist",
    "compress_cis@cis-n-1-train-emnist-mnist-test-emnist-mnist",
    "compress_cis@cis-n-5-train-emnist-mnist-test-emnist-mnist",
    "compress_if@is-if-n-1-train-emnist-mnist-test-emnist-mnist",
    "compress_stochastic@stochastic-n-1-train-emnist-mnist-test-emnist-mnist",
}
# README "Comparing experiments": one `dvc exp show` view per table, each readable at 120 columns.
# the README's views: one table of the paper, one pair of data sets, net or total (a wider selection
# of the full grid ends in DVC's "…" column); the reduced grid's pair is mnist
EXP_SHOW_VIEWS = {
    f"{table}, {rate}": rf"Experiment|mnist\.{coders}\.{rate}"
    for table, coders in (("BB-ELBO and BB-IS (table 1)", r"(elbo|is\d+)"), ("BB-CIS (table 3)", r"cis\d+"),
                          ("iterative inference, stochastic (tables 2, 4)", r"(.*-if|stoch)"))
    for rate in ("net", "total")
} | {"headline": r"Experiment|bb_.*"}


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
        status = _json(run_dvc(repo, "status", "--json", env=env).stdout)
    finally:
        path.write_bytes(original)
    return {name.split("@")[0] for name in status}


def _json(out: str):
    """The JSON document in a dvc command's output (stderr is merged: skip any warning)."""
    start = min(i for i in (out.find("{"), out.find("[")) if i >= 0)
    return json.JSONDecoder().raw_decode(out[start:])[0]


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, env=tool_env(), check=True, capture_output=True)


def _git_out(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=tool_env(), check=True, capture_output=True,
                          text=True).stdout


def test_reduced_pipeline_and_experiments(tmp_path, default_fixture_mirror):
    repo = make_dvc_repo(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["num_particles"] = 5
    params["grid"] = {"datasets": ["emnist-mnist"], "particles": [1, 5]}
    params["tables"] = {"iterative_particles": [1]}
    params["evaluate"]["num_images"] = 6
    params["compress"]["num_compress"] = 6
    params["iterative"]["steps"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = tool_env(MCBITS_MIRROR=str(default_fixture_mirror))

    first = run_dvc(repo, "repro", env=env)
    ran = _ran(first.stdout)
    for stage in ("prepare@emnist-mnist", "plan", "train@emnist-mnist-n-1", "train@emnist-mnist-n-5",
                  "evaluate@n-5-train-emnist-mnist-test-emnist-mnist", *CODING_STAGES, "headline",
                  "baselines@test-emnist-mnist", "aggregate", "figures"):
        assert stage in ran, f"{stage} did not run:\n{first.stdout[-3000:]}"
    assert "WARNING" not in first.stdout, first.stdout  # e.g. no "'...' is empty." output
    names = sorted(p.name for p in (repo / "metrics/compress").glob("*.json"))
    assert len(names) == 6  # BB-ELBO, BB-IS(5), BB-CIS(1), BB-CIS(5), BB-ELBO-IF, Stochastic
    runs = [{**json.loads((repo / "details/compress" / n).read_text()),
             **json.loads((repo / "metrics/compress" / n).read_text())} for n in names]
    assert all(r["decode_check"] == "passed" for r in runs)
    assert all(0.1 < r["net_bpd"] < 0.5 for r in runs if r["coder"] != "StochasticCoder")
    assert all(0.4 < r["net_bpd"] < 1.0 for r in runs if r["coder"] == "StochasticCoder")  # no bits back
    assert all(r["ideal_stderr_bpd"] > 0 and len(r["model_sha256"]) == 64 for r in runs)
    # The tracked metrics: every rate once, under a short name, rounded to 6 significant digits.
    summary = json.loads((repo / "metrics/summary.json").read_text())
    for r in runs:
        name = {"BitsBackCoder": "elbo", "StochasticCoder": "stoch"}.get(
            r["coder"], f"{r['coder'][:-len('BitsBackCoder')].lower()}{r['num_particles']}")
        name += "-if" if r["iterative"] else ""
        assert summary["mnist"][name] == {"net": round_floats(r["net_bpd"]),
                                          "total": round_floats(r["total_bpd"])}, name
    assert summary["mnist"]["n5"]["nll"] > 0 and summary["mnist"]["gzip"] > 0
    tables = (repo / "metrics/tables.md").read_text()
    assert "BB-IS (5)" in tables and "BB-CIS" in tables and "gzip" in tables
    for run in runs:  # every figure in the tables comes from a metrics file
        if run["coder"] not in ("CISBitsBackCoder", "StochasticCoder"):
            assert f"{run['net_bpd']:.4f}" in tables
    # The figures: the cached copy and the README's committed copy are the same bytes; imported
    # models were not trained, so there is no training-curve figure.
    figures = {p.name: p.read_bytes() for p in (repo / "metrics/figures").iterdir()}
    assert sorted(figures) == ["rate_vs_particles.png", "savings.png"]
    assert {p.name: p.read_bytes() for p in (repo / "docs/figures").iterdir()} == figures
    assert all(data.startswith(b"\x89PNG") for data in figures.values())
    plots = _json(run_dvc(repo, "plots", "show", "--json", env=env).stdout)
    assert not plots.get("errors"), plots["errors"]
    assert {"rate_vs_particles", "savings"} <= set(plots["data"])

    again = run_dvc(repo, "repro", env=env)
    assert not _ran(again.stdout), again.stdout
    assert "up to date" in again.stdout

    # An edit to an imported module makes exactly the stages that import it out of date.
    for module in ("mcbits/data/datasets.py", "stages/_common.py", "mcbits/results/tables.py"):
        assert _stale_after_edit(repo, module, env) == _importers(module), module

    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "baseline run")

    # The lock stays put: every stage run again from scratch writes the same outputs, so neither
    # dvc.lock nor anything git tracks changes (timings went to logs/, which git ignores).
    lock = (repo / "dvc.lock").read_text()
    run_dvc(repo, "repro", "--force", env=env)
    assert (repo / "dvc.lock").read_text() == lock
    assert _git_out(repo, "status", "--porcelain") == ""
    assert (repo / "logs/compress").is_dir()

    # Training parameters mean nothing to imported models: a valid one reruns the plan only, a
    # bad one is refused by name.
    paper = run_dvc(repo, "exp", "run", "-S", "train.profile=paper", env=env)
    assert _ran(paper.stdout) == {"plan"}, paper.stdout
    _git(repo, "checkout", "-q", "--", ".")
    nope = run_dvc(repo, "exp", "run", "-S", "train.profile=nope", env=env, check=False)
    assert nope.returncode != 0 and "training profile 'nope' is not defined" in nope.stdout, nope.stdout
    assert "train.profile" in nope.stdout
    _git(repo, "checkout", "-q", "--", ".")

    headline = run_dvc(repo, "exp", "run", "-S", "num_particles=1", env=env)
    assert _ran(headline.stdout) == {"headline"}, headline.stdout
    assert json.loads((repo / "metrics/headline.json").read_text())["num_particles"] == 1
    shown = run_dvc(repo, "exp", "show", "--csv", env=env).stdout
    assert "bb_is.net" in shown.splitlines()[0].split(",")

    # A particle count the grid has no model for: the stage says so, naming the parameter.
    _git(repo, "checkout", "-q", "--", ".")
    bad = run_dvc(repo, "exp", "run", "-S", "num_particles=0", env=env, check=False)
    assert bad.returncode != 0
    assert "num_particles=0 is not one of grid.particles [1, 5]" in bad.stdout, bad.stdout
    assert "No such file" not in bad.stdout

    _git(repo, "checkout", "-q", "--", ".")
    run_dvc(repo, "exp", "remove", "--all-commits", env=env)  # compare the next one with main only
    other = 20 if params["compress"]["prop_mprec"] != 20 else 16  # a change from the default
    precision = run_dvc(repo, "exp", "run", "-n", "prop", "-S", f"compress.prop_mprec={other}", env=env)
    ran = _ran(precision.stdout)
    assert {"aggregate", "figures", "headline"} <= ran
    assert {s for s in ran if s.startswith("compress")} == CODING_STAGES
    assert not {s for s in ran if s.split("@")[0] in ("prepare", "plan", "train", "evaluate", "baselines")}

    # `dvc metrics diff`: rates only, under short names, for every coding run.
    diff = _json(run_dvc(repo, "metrics", "diff", "--json", env=env).stdout)
    assert set(diff) == {"metrics/summary.json", "metrics/headline.json"}, diff
    changed = {key.rsplit(".", 1)[-1] for changes in diff.values() for key in changes}
    assert changed == {"net", "total"}, changed
    assert {f"mnist.{run}.net" for run in ("elbo", "is5", "cis1", "cis5", "elbo-if")} <= set(
        diff["metrics/summary.json"])
    # the stochastic coder codes no posterior, so prop_mprec leaves its rates as they were
    assert not {key for key in diff["metrics/summary.json"] if ".stoch." in key}

    # `dvc exp show --only-changed`: the changed rates, each column whole, one view per table at
    # 120 columns (README); together the views show every changed rate.
    header = next(csv.reader(io.StringIO(
        run_dvc(repo, "exp", "show", "--only-changed", "--csv", env=env).stdout)))
    rates = {c for c in header if c.endswith((".net", ".total"))}
    assert rates == {*diff["metrics/summary.json"], *diff["metrics/headline.json"]}, rates
    seen = set()
    wide = dict(env, COLUMNS="120")
    for view, keep in EXP_SHOW_VIEWS.items():
        table = run_dvc(repo, "exp", "show", "--only-changed", "--no-pager", "--drop", ".*", "--keep", keep,
                        env=wide).stdout
        assert "…" not in table, f"{view}:\n{table}"
        assert max(len(line) for line in table.splitlines()) <= 120, table
        seen |= {c for c in rates if f" {c} " in table}
        print(f"dvc exp show view '{view}':\n{table}")
    assert seen == rates, rates - seen
