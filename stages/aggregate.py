"""Aggregate stage: the upstream README's tables (and a fourth, general-purpose codecs) from this
run's metrics, as Markdown and CSV, and the plot data of `dvc plots` and the figures stage.

    python -m stages.aggregate

Reads grid, tables and iterative.steps; inputs metrics/compress/*.json with
details/compress/*.json (what each run was), metrics/baselines/*.json with details/baselines/, the
models' quality (metrics/evaluate with details/evaluate) and sources (details/train).
Writes metrics/tables.md, metrics/tables/<table>.{md,csv} (each cell's ideal rate and gap in
cells.csv), metrics/plots/{rate_vs_particles,savings}.csv, and metrics/summary.json: the
tracked metrics, every rate under a short name (mcbits.results.summary: `mnist.is50.net`), so that
`dvc exp show` and `dvc metrics diff` stay readable in a terminal.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mcbits.atomic import write_text_atomic
from mcbits.errors import McbitsError
from mcbits.results import tables as T
from mcbits.results.summary import summary
from stages import paths
from stages._common import load_params, stage_main, write_metrics


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise McbitsError(f"unreadable metrics file {path}: {err}", where=str(path),
                          remedy="rerun the stage that writes it (dvc repro -f <stage>)") from err


def load_records(metrics: Path, details: Path) -> list[dict]:
    """One record per metrics file in `metrics`: its details (details/<kind>/<same name>) and its
    metrics together (the metrics win where both have a key)."""
    records = []
    for path in sorted(metrics.glob("*.json")):
        beside = details / path.name
        if not beside.exists():
            raise McbitsError(f"{path} has no details file {beside}", where=str(beside),
                              remedy="rerun the stage that writes both (dvc repro)")
        records.append({**_read(beside), **_read(path)})
    return records


def _images_note(cells: pd.DataFrame | None, baselines: list[dict], records: list[dict], name: str) -> str:
    """Say how many images each figure rests on, naming any run that used a different number."""
    if name == "models":
        return ("Each model on the first images of its own test set (evaluate.num_images); "
                "± one standard error over images.")
    if name == "baselines":
        counts = [(b["test"], b["images"]) for b in baselines] + [
            (r["label"], r["images"]) for r in records if not r.get("iterative")]
    elif cells is None or cells.empty:
        return "No runs yet."
    else:
        counts = [(f"{row.label} {row.column}", row.images) for row in cells.itertuples()]
    values = sorted({int(c) for _, c in counts})
    if not values:
        return "No runs yet."
    if len(values) == 1:
        return f"Images per run: {values[0]}."
    common = max(values, key=lambda v: sum(int(c) == v for _, c in counts))
    others = "; ".join(f"{what}: {int(c)}" for what, c in counts if int(c) != common)
    return f"Images per run: {common}, except {others}."


def _csv(frame: pd.DataFrame, **kwargs) -> str:
    return frame.to_csv(float_format="%.6g", lineterminator="\n", **kwargs)


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=Path, default=paths.METRICS_ROOT)
    parser.add_argument("--details", type=Path, default=paths.DETAILS_ROOT)
    args = parser.parse_args(argv)
    params = load_params("grid", "tables", "iterative")
    datasets = list(params["grid"]["datasets"])
    particles = sorted(int(n) for n in params["grid"]["particles"])
    if_particles = sorted(int(n) for n in params["tables"]["iterative_particles"])
    steps = int(params["iterative"]["steps"])

    records = load_records(args.metrics / "compress", args.details / "compress")
    baselines = load_records(args.metrics / "baselines", args.details / "baselines")
    failed = [r.get("label") for r in records if r.get("decode_check") == "failed"]
    if failed:
        raise McbitsError(f"decode checks failed for {failed}", remedy="see the compress stages' output")
    labels = {}
    for r in records:
        labels[r["test"]] = T.dataset_label(r["test"], r.get("test_display_name"),
                                           r.get("test_subset", False))

    evaluations = load_records(args.metrics / "evaluate", args.details / "evaluate")
    trainings = [_read(p) for p in sorted((args.details / "train").glob("*.json"))]
    t0 = T.models_table(evaluations, trainings, datasets, particles)

    out = args.metrics / "tables"
    t1, l1 = T.distribution_table(records, datasets, particles, labels)
    t2, l2 = T.iterative_table(records, datasets, if_particles, steps, labels)
    t3, l3 = T.coupled_table(records, datasets[0], particles)
    t4 = T.baselines_table(baselines, records, datasets, particles, labels)
    sections = [
        ("models", "The models: test -log p(x) by importance sampling, in distribution", t0),
        ("distribution", "In- and out-of-distribution compression (net bits/dim)", t1),
        ("iterative", "Iterative inference (net bits/dim)", t2),
        ("coupled", f"BB-IS vs BB-CIS, {labels.get(datasets[0], datasets[0])} in distribution "
                    "(net / total / file bits/dim)", t3),
        ("baselines", "General-purpose codecs on the same images (bits/dim)", t4),
    ]
    doc = ["# Results\n", "Every figure comes from this run's metrics files (metrics/compress, "
           "metrics/baselines); ideal rates and gaps per cell are in the CSV files.\n"]
    longs = {"distribution": l1, "iterative": l2, "coupled": l3}
    for name, title, table in sections:
        md = T.to_markdown(table) + "\n" + _images_note(longs.get(name), baselines, records, name) + "\n"
        write_text_atomic(out / f"{name}.md", f"## {title}\n\n{md}")
        doc.append(f"## {title}\n\n{md}")
    write_text_atomic(args.metrics / "tables.md", "\n".join(doc))
    frames = [f for f in (l1, l2, l3) if not f.empty]
    cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_text_atomic(out / "cells.csv", _csv(cells, index=False))
    for name, _, table in sections:
        write_text_atomic(out / f"{name}.csv", _csv(table))

    # Plot data (dvc plots and the figures stage): rates against N in distribution, table 1's savings.
    rates = T.rates_vs_particles(records, datasets[0], particles)
    write_text_atomic(args.metrics / "plots" / "rate_vs_particles.csv", _csv(rates, index=False))
    savings = T.savings_frame(t1)
    write_text_atomic(args.metrics / "plots" / "savings.csv", _csv(savings, index=False))
    write_metrics(args.metrics / "summary.json", summary(records, evaluations, baselines, datasets))
    print("\n".join(doc))
    passed = sum(r.get("decode_check") == "passed" for r in records)
    print(f"{len(records)} coding runs, {passed} decode checks passed")


if __name__ == "__main__":
    main()
