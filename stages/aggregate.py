"""Aggregate stage: the upstream README's tables (and a fourth, general-purpose codecs) from this
run's metrics, as Markdown and CSV under metrics/tables/, a JSON summary, and plot data.

    python -m stages.aggregate

Reads grid, tables and compress.iterative.steps; inputs metrics/compress/*.json and
metrics/baselines/*.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mcbits.atomic import write_text_atomic
from mcbits.errors import McbitsError
from mcbits.results import tables as T
from stages import paths
from stages._common import load_params, stage_main, write_json_atomic


def _load_all(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise McbitsError(f"unreadable metrics file {path}: {err}", where=str(path),
                              remedy="rerun the stage that writes it (dvc repro -f <stage>)") from err
    return records


def _images_note(cells: pd.DataFrame | None, baselines: list[dict], records: list[dict], name: str) -> str:
    """Say how many images each figure rests on, naming any run that used a different number."""
    if name == "baselines":
        counts = [(b["test"], b["images"]) for b in baselines] + [
            (r["label"], r["images"]) for r in records if not r.get("iterative")]
    elif cells is None or cells.empty:
        return "No runs yet."
    else:
        counts = [(f"{row.label} {row.column}", row.images) for row in cells.itertuples()]
    values = sorted({int(c) for _, c in counts})
    if len(values) == 1:
        return f"Images per run: {values[0]}."
    common = max(values, key=lambda v: sum(int(c) == v for _, c in counts))
    others = "; ".join(f"{what}: {int(c)}" for what, c in counts if int(c) != common)
    return f"Images per run: {common}, except {others}."


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=Path, default=paths.METRICS_ROOT)
    args = parser.parse_args(argv)
    params = load_params("grid", "tables", "compress")
    datasets = list(params["grid"]["datasets"])
    particles = sorted(int(n) for n in params["grid"]["particles"])
    if_particles = sorted(int(n) for n in params["tables"]["iterative_particles"])
    steps = int(params["compress"]["iterative"]["steps"])

    records = _load_all(args.metrics / "compress")
    baselines = _load_all(args.metrics / "baselines")
    failed = [r.get("label") for r in records if r.get("decode_check") == "failed"]
    if failed:
        raise McbitsError(f"decode checks failed for {failed}", remedy="see the compress stages' output")
    labels = {}
    for r in records:
        labels[r["test"]] = T.dataset_label(r["test"], r.get("test_display_name"),
                                           r.get("test_subset", False))

    out = args.metrics / "tables"
    t1, l1 = T.distribution_table(records, datasets, particles, labels)
    t2, l2 = T.iterative_table(records, datasets, if_particles, steps, labels)
    t3, l3 = T.coupled_table(records, datasets[0], particles)
    t4 = T.baselines_table(baselines, records, datasets, particles, labels)
    sections = [
        ("distribution", "In- and out-of-distribution compression (net bits/dim)", t1),
        ("iterative", "Iterative inference (net bits/dim)", t2),
        ("coupled", f"BB-IS vs BB-CIS, {labels.get(datasets[0], datasets[0])} in distribution "
                    "(net / total bits/dim)", t3),
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
    write_text_atomic(out / "cells.csv", cells.to_csv(index=False))
    for name, _, table in sections:
        write_text_atomic(out / f"{name}.csv", table.to_csv())

    # plot data: rates against the number of particles, in distribution
    plot_rows: dict[str, list] = {"is": [], "cis": []}
    frame = T.records_frame(records)
    for n in particles:
        for key, coder in (("is", T.is_coder(n)[0]), ("cis", "CISBitsBackCoder")):
            rec = T.pick(frame, coder, n, datasets[0], datasets[0], False) if records else None
            if rec is not None:
                plot_rows[key].append({"num_particles": n, "net_bpd": rec["net_bpd"],
                                       "total_bpd": rec["total_bpd"], "ideal_bpd": rec["ideal_bpd"]})
    for key, rows in plot_rows.items():
        write_text_atomic(args.metrics / "plots" / f"{key}_vs_particles.csv", pd.DataFrame(
            rows, columns=["num_particles", "net_bpd", "total_bpd", "ideal_bpd"]).to_csv(index=False))

    def _flat(table: pd.DataFrame) -> dict:
        return {str(r): {str(c): (None if pd.isna(v) else (float(v) if not isinstance(v, str) else v))
                         for c, v in row.items()} for r, row in table.iterrows()}

    write_json_atomic(args.metrics / "summary.json", {
        "runs": len(records),
        "decode_checks_passed": sum(r.get("decode_check") == "passed" for r in records),
        "distribution": _flat(t1),
        "iterative": _flat(t2),
        "coupled": _flat(t3),
        "baselines": _flat(t4),
    })
    print("\n".join(doc))


if __name__ == "__main__":
    main()
