"""The result tables of upstream's README, built with pandas from per-run metrics records.

A record is one compress run's metrics and details together (the compress stage writes them as
two files): label, coder, num_particles, train, test, test_display_name, iterative, net_bpd,
total_bpd, ideal_bpd, ...; a baselines record holds test, images and bits/dim per codec (gzip,
bz2, lzma, png).
Every cell comes from a record; a missing run leaves its cell empty, never a made-up number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from mcbits.coding.registry import coder_label, is_family_coder

SHORT_DATASET_NAMES = {
    "emnist-mnist": "MNIST",
    "emnist-letters": "Letters",
    "mnist": "MNIST (original)",
    "fashion-mnist": "Fashion-MNIST",
}


def dataset_label(dataset: str, display_name: str | None = None, subset: bool = False) -> str:
    """A column-header name; a test subset keeps its qualifier (e.g. 'Letters (a-s, 14,800)')."""
    base = SHORT_DATASET_NAMES.get(dataset, dataset)
    if subset and display_name and "(" in display_name:
        return f"{base} {display_name[display_name.index('('):]}"
    return base


def setting_label(train: str, test: str, labels: dict[str, str]) -> str:
    return f"{SHORT_DATASET_NAMES.get(train, train)} → {labels.get(test, test)}"


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(records))
    if frame.empty:
        return pd.DataFrame(columns=["label", "coder", "num_particles", "train", "test", "iterative",
                                     "net_bpd", "total_bpd", "ideal_bpd"])
    frame["iterative"] = frame["iterative"].apply(lambda v: bool(v))
    return frame


def pick(frame: pd.DataFrame, coder: str, n: int, train: str, test: str, iterative: bool) -> dict | None:
    rows = frame[(frame.coder == coder) & (frame.num_particles == n) & (frame.train == train)
                 & (frame.test == test) & (frame.iterative == iterative)]
    return None if rows.empty else rows.iloc[0].to_dict()


def _savings(frame: pd.DataFrame, base_row: str, rows: Sequence[str]) -> pd.Series:
    """Relative net-rate reduction of the best row over the base row, per column, in %."""
    best = frame.loc[list(rows)].min(axis=0)
    return 100.0 * (frame.loc[base_row] - best) / frame.loc[base_row]


def is_coder(n: int) -> tuple[str, str]:
    coder = is_family_coder(n)
    return coder, coder_label(coder, n)


def distribution_table(records: Iterable[dict[str, Any]], datasets: Sequence[str], particles: Sequence[int],
                       labels: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1: net bits/dim of BB-ELBO and BB-IS(N) in and out of distribution, and Savings.

    Returns (net table with a Savings row, long-form CSV frame with net/total/ideal per cell).
    """
    frame = records_frame(records)
    # Every model on its own test set first, then on each other data set's (two data sets give
    # upstream's order: a->a, a->b, b->b, b->a).
    settings = [(tr, te) for tr in datasets for te in [tr, *(d for d in datasets if d != tr)]]
    columns = [setting_label(tr, te, labels) for tr, te in settings]
    table = pd.DataFrame(index=[is_coder(n)[1] for n in particles], columns=columns, dtype=float)
    long = []
    for n in particles:
        coder, row = is_coder(n)
        for (tr, te), col in zip(settings, columns, strict=True):
            rec = pick(frame, coder, n, tr, te, False)
            if rec is not None:
                table.loc[row, col] = rec["net_bpd"]
                long.append({"table": "distribution", "row": row, "column": col, **_cell(rec)})
    if len(particles) > 1:
        table.loc["Savings (%)"] = _savings(table, table.index[0], table.index[: len(particles)])
    return table, pd.DataFrame(long)


def iterative_table(records: Iterable[dict[str, Any]], datasets: Sequence[str], particles: Sequence[int],
                    steps: int, labels: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2: BB-ELBO and BB-IS(N), with and without iterative inference (IF), and Savings."""
    frame = records_frame(records)
    train = datasets[0]
    tests = list(datasets[:2])
    columns = [setting_label(train, te, labels) for te in tests]
    order: list[tuple[str, int, bool, str]] = []
    for n in particles:
        coder, name = is_coder(n)
        order += [(coder, n, False, name), (coder, n, True, f"{name}-IF ({steps})")]
    table = pd.DataFrame(index=[o[3] for o in order], columns=columns, dtype=float)
    long = []
    for coder, n, it, name in order:
        for te, col in zip(tests, columns, strict=True):
            rec = pick(frame, coder, n, train, te, it)
            if rec is not None:
                table.loc[name, col] = rec["net_bpd"]
                long.append({"table": "iterative", "row": name, "column": col, **_cell(rec)})
    if len(order) > 1:
        table.loc["Savings (%)"] = _savings(table, order[0][3], [o[3] for o in order])
    return table, pd.DataFrame(long)


def coupled_table(records: Iterable[dict[str, Any]], dataset: str, particles: Sequence[int],
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3: BB-IS vs BB-CIS in distribution, cells 'net / total / file' bits/dim (file: the
    whole file, header and check included; shown where the record has it).

    BB-IS with one particle codes exactly the bits of BB-ELBO (the particle index takes no bits),
    so its cell is the BB-ELBO run.
    """
    frame = records_frame(records)
    table = pd.DataFrame(index=[str(n) for n in particles], columns=["BB-IS", "BB-CIS"], dtype=object)
    table.index.name = "N"
    long = []
    for n in particles:
        for col, coder in (("BB-IS", is_coder(n)[0]), ("BB-CIS", "CISBitsBackCoder")):
            rec = pick(frame, coder, n, dataset, dataset, False)
            if rec is not None:
                cell = f"{rec['net_bpd']:.4f} / {rec['total_bpd']:.4f}"
                if rec.get("file_bpd") is not None and not pd.isna(rec.get("file_bpd")):
                    cell += f" / {rec['file_bpd']:.4f}"
                table.loc[str(n), col] = cell
                long.append({"table": "coupled", "row": str(n), "column": col, **_cell(rec)})
    return table, pd.DataFrame(long)


def baselines_table(baselines: Iterable[dict[str, Any]], records: Iterable[dict[str, Any]],
                    datasets: Sequence[str], particles: Sequence[int],
                    labels: dict[str, str]) -> pd.DataFrame:
    """Table 4: general-purpose codecs beside the McBits coders (in distribution), bits/dim."""
    frame = records_frame(records)
    base = {b["test"]: b for b in baselines}
    columns = [labels.get(d, d) for d in datasets]
    rows = ["gzip", "bz2", "lzma", "PNG (1-bit, per image)"]
    keys = ["gzip", "bz2", "lzma", "png"]
    mc_rows: list[tuple[str, int, str]] = [("StochasticCoder", 1, "Stochastic (no bits back)")]
    mc_rows += [(is_coder(n)[0], n, is_coder(n)[1]) for n in particles]
    table = pd.DataFrame(index=rows + [f"{name} (net)" for _, _, name in mc_rows], columns=columns,
                         dtype=float)
    for d, col in zip(datasets, columns, strict=True):
        if d in base:
            for row, key in zip(rows, keys, strict=True):
                table.loc[row, col] = base[d][key]
        for coder, n, name in mc_rows:
            rec = pick(frame, coder, n, d, d, False)
            if rec is not None:
                table.loc[f"{name} (net)", col] = rec["net_bpd"]
    return table


RATE_COLUMNS = ["num_particles", "coder", "rate", "bits_per_dim"]
SAVINGS_COLUMNS = ["setting", "savings_pct", "num_particles", "baseline", "label"]


def rates_vs_particles(records: Iterable[dict[str, Any]], dataset: str, particles: Sequence[int],
                       ) -> pd.DataFrame:
    """Net and total bits/dim of BB-IS (BB-ELBO at N = 1) and BB-CIS against N, in distribution,
    in long form (one column per encoding, so a plot template maps coder to colour and rate to
    dash): num_particles, coder ('BB-IS' or 'BB-CIS'), rate ('net' or 'total'), bits_per_dim.
    A missing run has no rows, never an empty cell."""
    frame = records_frame(records)
    rows = []
    for name in ("BB-IS", "BB-CIS"):
        for kind in ("net", "total"):
            for n in particles:
                coder = is_coder(n)[0] if name == "BB-IS" else "CISBitsBackCoder"
                rec = pick(frame, coder, n, dataset, dataset, False)
                value = None if rec is None else rec.get(f"{kind}_bpd")
                if value is not None and not pd.isna(value):
                    rows.append({"num_particles": int(n), "coder": name, "rate": kind,
                                 "bits_per_dim": float(value)})
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def _row_particles(row: str) -> int | None:
    """N of a table-1 row label ('BB-ELBO' is N = 1, 'BB-IS (50)' N = 50); None if not a row."""
    if row == is_coder(1)[1]:
        return 1
    tail = row.rsplit("(", 1)[-1].rstrip(")")
    return int(tail) if tail.isdigit() and is_coder(int(tail))[1] == row else None


def savings_frame(distribution: pd.DataFrame) -> pd.DataFrame:
    """Table 1's Savings row as bar data: per setting with both runs, the saving (%) of the best
    BB-IS(N) over the table's first row (BB-ELBO when the grid has N = 1), that N, the baseline's
    name and a bar label naming the N ('3.8% at N = 50').

    When no setting has a saving (one particle count in the grid, or runs missing) it holds one
    row that says why (no saving, setting '(none)'), so that a plot of it is never blank."""
    rows = [r for r in distribution.index if r != "Savings (%)"]
    baseline = rows[0] if rows else "BB-ELBO"
    base_n = _row_particles(baseline)
    out = []
    if "Savings (%)" in distribution.index and len(rows) > 1:
        for column in distribution.columns:
            saving = distribution.loc["Savings (%)", column]
            if pd.isna(saving):
                continue
            best = str(distribution.loc[rows, column].astype(float).idxmin())
            n = _row_particles(best)
            if best == baseline:
                label = f"{saving:.1f}% (no N beats {baseline})"
            elif n is None:
                label = f"{saving:.1f}% ({best})"
            else:
                label = f"{saving:.1f}% at N = {n}" + ("" if base_n == 1 else f" over {baseline}")
            out.append({"setting": str(column), "savings_pct": float(saving), "num_particles": n,
                        "baseline": baseline, "label": label})
    if not out:
        why = (f"grid.particles has one N, nothing to set against {baseline}" if len(rows) < 2
               else f"no setting has both a {baseline} and a BB-IS(N) run yet")
        out.append({"setting": "(none)", "savings_pct": None, "num_particles": None,
                    "baseline": baseline, "label": f"no saving to show: {why}"})
    frame = pd.DataFrame(out, columns=SAVINGS_COLUMNS)
    frame["num_particles"] = frame["num_particles"].astype("Int64")  # '50' in the CSV, not '50.0'
    frame["savings_pct"] = frame["savings_pct"].astype(float)
    return frame


def _cell(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": rec.get("label"),
        "net_bpd": rec["net_bpd"],
        "total_bpd": rec["total_bpd"],
        "file_bpd": rec.get("file_bpd"),
        "ideal_bpd": rec.get("ideal_bpd"),
        "ideal_stderr_bpd": rec.get("ideal_stderr_bpd"),
        "gap_pct": rec.get("gap_pct"),
        "images": rec.get("images"),
        "decode_check": rec.get("decode_check"),
    }


# The IWAE paper (Burda, Grosse, Salakhutdinov, ICLR 2016), Table 1: test -log p(x) in nats of this
# architecture (one stochastic layer) on dynamically binarized MNIST, k = 5,000; by training N.
IWAE_PAPER_NLL_NATS = {1: 86.76, 5: 85.54, 50: 84.78}
PAPER_NLL_DATASETS = ("mnist",)  # the original MNIST, the paper's data set


def models_table(evaluations: Iterable[dict[str, Any]], trainings: Iterable[dict[str, Any]],
                 datasets: Sequence[str], particles: Sequence[int]) -> pd.DataFrame:
    """Table 0: each model's quality on its own test set: source, test -log p(x) in nats (± its
    standard error over images, k samples) and bits/dim, and the IWAE paper's figure where the
    data set is the paper's (original MNIST)."""
    evals = {(e["train_dataset"], int(e["train_particles"])): e for e in evaluations
             if e.get("in_distribution")}
    sources = {(t["dataset"], int(t["num_particles"])): t for t in trainings}
    columns = ["Source", "-log p(x) (nats)", "bits/dim", "k", "IWAE paper (nats)", "gap"]
    rows, index = [], []
    for d in datasets:
        for n in particles:
            ev, tr = evals.get((d, n)), sources.get((d, n))
            nll = (ev or {}).get("bounds", {}).get("nll")
            source = "–" if tr is None else (
                "published" if tr.get("source") == "published" else f"trained ({tr.get('profile')})")
            paper = IWAE_PAPER_NLL_NATS.get(n) if d in PAPER_NLL_DATASETS else None
            rows.append([
                source,
                "–" if nll is None else f"{nll['nats']:.2f} ± {nll['std_error_nats']:.2f}",
                None if nll is None else float(nll["bits_per_dim"]),
                "–" if nll is None else str(nll["num_particles"]),
                "–" if paper is None else f"{paper:.2f}",
                "–" if paper is None or nll is None else f"{100 * (nll['nats'] / paper - 1):+.2f}%",
            ])
            index.append(f"{SHORT_DATASET_NAMES.get(d, d)}, N={n}")
    table = pd.DataFrame(rows, index=index, columns=columns)
    table.index.name = "Model"
    return table


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency: pandas' to_markdown needs tabulate)."""
    def fmt(value: Any, row: str) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "–"
        if isinstance(value, float):
            return f"{value:.1f}%" if "Savings" in row else f"{value:.{digits}f}"
        return str(value)

    head = [table.index.name or "Method / Setting", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, values in table.iterrows():
        lines.append("| " + " | ".join([str(row), *(fmt(v, str(row)) for v in values)]) + " |")
    return "\n".join(lines) + "\n"
