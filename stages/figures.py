"""Figures stage: the README's PNG figures from the aggregate stage's plot data and the trained
models' curves (checkpoints/<model>/curves/).

    python -m stages.figures

Reads grid.datasets (the in-distribution data set names the first figure). Writes, into both
metrics/figures/ (a cached output: `dvc push` shares it) and docs/figures/ (the same bytes,
committed to git for the README; dvc.yaml declares it an uncached image plot):

- rate_vs_particles.png: net (solid) and total (dashed) bits/dim of BB-IS and BB-CIS (one colour
  each) against N (log scale);
- savings.png: table 1's savings of BB-IS(N) over BB-ELBO per setting, bars from zero labelled
  with their N (with one particle count in the grid, the figure says why there is no saving);
- training_curves.png: per-epoch losses, only when a model of the grid was trained (imported
  checkpoints have no history, and get no empty plot).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mcbits.atomic import atomic_folder
from mcbits.results import figures as F
from mcbits.results.tables import SHORT_DATASET_NAMES
from stages import paths
from stages._common import load_params, stage_main


def _read_csv(path: Path) -> pd.DataFrame:
    from mcbits.errors import McbitsError

    if not path.exists():
        raise McbitsError(f"plot data {path} is missing", where=str(path),
                          remedy="run the aggregate stage first (dvc repro does)")
    return pd.read_csv(path)


def render(plots: Path, histories: Path, dataset: str) -> dict[str, bytes]:
    """{file name: PNG bytes}: the rate and savings figures always (a figure without data says why,
    so a grid that cannot fill one never deletes its committed copy), the training curves only
    when a model was trained."""
    rates = _read_csv(plots / "rate_vs_particles.csv")
    label = SHORT_DATASET_NAMES.get(dataset, dataset)
    out = {
        "rate_vs_particles.png": F.rate_vs_particles_png(rates, f"BB-IS and BB-CIS, {label} → {label}"),
        "savings.png": F.savings_png(_read_csv(plots / "savings.csv")),
    }
    # checkpoints/<model>/curves/: only a trained model has one (imported ones get no empty plot)
    curves = {folder.name: read_curves(folder / paths.CURVES_FOLDER)
              for folder in sorted(histories.glob("*/"))}
    trained = {name: h for name, h in curves.items() if not h.empty}
    if trained:
        out["training_curves.png"] = F.training_curves_png(trained)
    return out


def read_curves(folder: Path) -> pd.DataFrame:
    """A trained model's DVCLive curves as one frame: epoch, train_bpd, test_bpd (empty if none)."""
    frames = []
    for name in ("train_bpd", "test_bpd"):
        tsv = folder / "plots" / "metrics" / f"{name}.tsv"
        if not tsv.exists():
            return pd.DataFrame()
        frames.append(pd.read_csv(tsv, sep="\t")[["step", name]].set_index("step"))
    curves = frames[0].join(frames[1], how="inner").reset_index()
    curves["epoch"] = curves.pop("step") + 1
    return curves


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plots", type=Path, default=paths.PLOTS_ROOT)
    parser.add_argument("--histories", type=Path, default=paths.CHECKPOINTS_ROOT,
                        help="folder of model folders, each with DVCLive's curves in <model>/curves/")
    parser.add_argument("--out", type=Path, action="append",
                        help=f"output folder (repeatable; default {paths.FIGURES_ROOT} and "
                        f"{paths.README_FIGURES})")
    args = parser.parse_args(argv)
    datasets = (load_params("grid")["grid"] or {}).get("datasets") or ["?"]
    pngs = render(args.plots, args.histories, str(datasets[0]))
    for folder in args.out or [paths.FIGURES_ROOT, paths.README_FIGURES]:
        with atomic_folder(folder) as tmp:
            for name, data in pngs.items():
                F.write_png(tmp / name, data)
        print(f"{folder}: {', '.join(pngs) or 'no figures (no data yet)'}")


if __name__ == "__main__":
    main()
