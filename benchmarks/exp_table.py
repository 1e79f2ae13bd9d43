"""The README's pipeline precision table from the sweep experiments (benchmarks/pipeline_sweep.sh).

    python benchmarks/exp_table.py benchmarks/results-pipeline-sweep.tsv

Reads every experiment named in the TSV (name, settings, wall seconds, base commit) with
`dvc.api.exp_show` and compares each coding run's tracked metrics with the base commit's: the mean
change of the net and total rates over the bits-back runs, and the largest gap (net vs ideal rate,
every run) in and out of distribution. Prints a Markdown table.
"""

from __future__ import annotations

import csv
import re
import sys
from statistics import mean

import dvc.api

RUN = re.compile(r"^metrics/compress/(?P<file>[^:]+)\.json:(?P<key>.+)$")
# DVC drops a metrics file's name from its columns where the key alone is unique (headline's)
HEADLINE = re.compile(r"^(?:metrics/headline\.json:)?(?P<coder>bb_[a-z]+)\.(?P<key>[a-z_]+)$")


def runs(row: dict) -> dict[str, dict[str, float]]:
    """{run: {net_bpd, total_bpd, ideal_bpd, in_distribution}} from one exp_show row."""
    found: dict[str, dict] = {}
    for column, value in row.items():
        if value in (None, "", "-"):
            continue
        if m := RUN.match(column):
            name, key = m["file"], m["key"]
            train, test = name.split("_", 1)[1].split("_on_")
            in_dist = train == test
        elif m := HEADLINE.match(column):
            name, key, in_dist = f"headline-{m['coder']}", m["key"], True
        else:
            continue
        if key in ("net_bpd", "total_bpd", "ideal_bpd"):
            found.setdefault(name, {"in_distribution": in_dist})[key] = float(value)
    return found


def main(tsv: str) -> None:
    with open(tsv) as f:
        sweeps = [r for r in csv.reader(f, delimiter="\t") if r]
    # the commits the experiments started from (the same results-shaping code: their baselines
    # must agree, checked below); the first one's baseline is the reference
    base_revs = list(dict.fromkeys(r[3] for r in sweeps))
    rows = dvc.api.exp_show(revs=base_revs)
    by_name = {r.get("Experiment") or r.get("rev"): r for r in rows}
    base = next(r for r in rows if not r.get("Experiment") and r.get("rev") not in ("workspace",))
    base_runs = runs(base)
    for other in (r for r in rows if r.get("typ") == "baseline" and r.get("rev") != "workspace"):
        if runs(other) != base_runs:
            sys.exit(f"the baselines of {base_revs} differ ({other.get('rev')}): compare within one commit")
    print("| setting | bits-back runs | net vs defaults (mean, range) | total vs defaults (mean) | "
          "largest gap in distribution | largest gap out of distribution | wall time |")
    print("|---|---|---|---|---|---|---|")

    def line(label, exp_runs, seconds):
        # the stochastic coder's rate is log2 K bits per latent dimension plus the pixels (no bits
        # back): it moves with the bucket count by design, so it is left out of the mean changes
        common = sorted(r for r in set(exp_runs) & set(base_runs) if not r.startswith("stochastic"))
        d_net = [100 * (exp_runs[r]["net_bpd"] / base_runs[r]["net_bpd"] - 1) for r in common]
        d_total = [100 * (exp_runs[r]["total_bpd"] / base_runs[r]["total_bpd"] - 1) for r in common]
        gaps = {r: 100 * (v["net_bpd"] / v["ideal_bpd"] - 1) for r, v in exp_runs.items()}
        gin = max(g for r, g in gaps.items() if exp_runs[r]["in_distribution"])
        gout = max(g for r, g in gaps.items() if not exp_runs[r]["in_distribution"])
        print(f"| {label} | {len(common)} | {mean(d_net):+.3f}% ({min(d_net):+.2f}..{max(d_net):+.2f}) | "
              f"{mean(d_total):+.3f}% | {gin:+.2f}% | {gout:+.2f}% | {seconds} |")

    line("defaults (params.yaml)", base_runs, "-")
    params = [k for k in base if re.match(r"^(compress|grid|train|evaluate|prepare|tables)\.", k)
              or k == "num_particles"]
    for name, settings, seconds, _ in sweeps:
        exp = by_name.get(f"sweep-{name}")
        if exp is None:
            print(f"| {settings} | (experiment sweep-{name} not found) | | | | | |")
            continue
        # an experiment that differs from its base in more than its own settings (e.g. a workspace
        # edit carried into it) measures something else: refuse it
        meant = {s.split("=")[0] for s in settings.split() if s != "-S"}
        changed = {k for k in params if exp.get(k) != base.get(k)}
        if changed != meant:
            sys.exit(f"sweep-{name} changes {sorted(changed)}, not just {sorted(meant)}: rerun it")
        label = " ".join(s.removeprefix("compress.") for s in settings.split() if s != "-S")
        line(label, runs(exp), f"{seconds} s")


if __name__ == "__main__":
    main(sys.argv[1])
