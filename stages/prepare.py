"""Stage `prepare`: verified raw files and the fixed binarized test set of one data set.

    python -m stages.prepare --dataset <id>   (emnist-mnist, emnist-letters, mnist, fashion-mnist)

Reads the `prepare` block of params.yaml: `seed` (binarization and order of the test set),
`train_data` (also prepare the grayscale training set: true, false, or auto = only for data sets
without a published checkpoint, which train.source: auto trains from scratch) and `mirror` (a
local mirror folder; MCBITS_MIRROR is consulted first). Writes, each folder built under a
temporary name and renamed into place only when complete:

    data/raw/<id>/                the verified idx files the data set needs, as served
    data/prepared/<id>/test.npz   the test set, binarized once, in seeded random order (mcbits.data.datasets)
    data/prepared/<id>/train.npz  the grayscale training set (only when train_data is true)
    data/prepared/<id>/summary.json  counts, display name, the SHA-256 and verifying digest of
                                     every raw file
    details/prepare/<id>.json     where each raw file came from (mirror, cache, URL, archive: the
                                  kind and the file's name, never a local folder) and the timing

Nothing under data/ depends on where a file came from (the train stage depends on
data/prepared/<id>: moving the mirror, or downloading instead, must not change its hash).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcbits.atomic import atomic_folder
from mcbits.data import datasets
from mcbits.errors import McbitsError
from stages import paths
from stages._common import (
    PUBLISHED_SPLITS,
    load_params,
    portable_source,
    stage_main,
    write_details,
    write_json_atomic,
    write_log,
)


def _settings(block: dict[str, Any]) -> tuple[int, bool | str, str | None]:
    seed, train_data, mirror = (
        block.get("seed"),
        block.get("train_data", False),
        block.get("mirror"),
    )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise McbitsError(
            f"prepare.seed must be a non-negative integer, got {seed!r}",
            where="params.yaml: prepare.seed",
            remedy="set e.g. `seed: 42`",
        )
    if not isinstance(train_data, bool) and train_data != "auto":
        raise McbitsError(
            f"prepare.train_data must be auto, true or false, got {train_data!r}",
            where="params.yaml: prepare.train_data",
            remedy="set `train_data: auto` (only data sets without a published checkpoint), "
            "`true` (every data set) or `false`",
        )
    if mirror is not None and not isinstance(mirror, str):
        raise McbitsError(
            f"prepare.mirror must be a folder path or null, got {mirror!r}",
            where="params.yaml: prepare.mirror",
            remedy="set `mirror: null` or e.g. `mirror: ../shared/mirror`",
        )
    return seed, train_data, mirror or None


def _file_rows(split: datasets.FetchedSplit) -> list[dict[str, str]]:
    """What identifies each raw file (the same wherever it was fetched from)."""
    return [
        {"name": f.name, "file": f.path.name, "sha256": f.sha256, "verified_by": f.verified_by}
        for f in (split.images, split.labels)
    ]


def _sources(split: datasets.FetchedSplit) -> dict[str, str]:
    """Where each raw file came from, without local folders (for details/, not data/)."""
    return {f.path.name: portable_source(f.source) for f in (split.images, split.labels)}


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(labels, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def prepare(
    dataset_id: str,
    *,
    seed: int,
    train_data: bool,
    mirror: str | None,
    raw_dir: Path | None = None,
    prepared_dir: Path | None = None,
    details_path: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fetch, verify, binarize and write one data set; return the summary written beside it.

    Both folders (default: the pipeline's data/raw/<id> and data/prepared/<id>) are built beside
    their final places and installed only once everything is written; then the details file
    (default details/prepare/<id>.json)."""
    info = datasets.get_dataset(dataset_id)
    raw_dir = paths.raw_dir(dataset_id) if raw_dir is None else raw_dir
    prepared_dir = paths.prepared_dir(dataset_id) if prepared_dir is None else prepared_dir
    details_path = paths.prepare_details(dataset_id) if details_path is None else details_path
    raw_tmp = None
    try:
        started = time.perf_counter()
        with atomic_folder(raw_dir) as raw_tmp, atomic_folder(prepared_dir) as prep_tmp:
            summary, details = _prepare_into(raw_tmp, prep_tmp, dataset_id, info, seed=seed,
                                             train_data=train_data, mirror=mirror, progress=progress)
        seconds = round(time.perf_counter() - started, 3)
        # Where each file came from (mirror, cache or URL) varies between machines while the
        # verified bytes do not: it goes to the log, the details keep what the data are.
        sources = {k: details.pop(k) for k in ("test_sources", "full_test_set_sources_tried",
                                               "train_sources") if k in details}
        write_details(details_path, details)
        # beside a details file given by a caller (tests), else the pipeline's logs/prepare/<id>.json
        log_path = paths.prepare_log(dataset_id) if details_path == paths.prepare_details(dataset_id) \
            else details_path.with_suffix(".log.json")
        write_log(log_path, {**sources, "seconds": seconds})
        print(f"prepare {dataset_id}: done in {seconds:.1f} s")
        return summary
    except McbitsError as err:
        # Name the output folder, not the temporary one that is about to disappear.
        if err.where and raw_tmp is not None:
            err.where = err.where.replace(str(raw_tmp), str(raw_dir))
        raise


def _prepare_into(
    raw_tmp: Path, prep_tmp: Path, dataset_id: str, info: datasets.DatasetInfo, *, seed: int,
    train_data: bool, mirror: str | None, progress: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the prepared files into the temporary folders; return (summary, details)."""
    test = datasets.fetch_split(dataset_id, "test", raw_tmp, mirror=mirror, progress=progress)
    gray, labels = datasets.read_split(test)
    order = datasets.shuffled_order(len(gray), seed)
    bits = datasets.binarize(gray[order], seed)
    checksums = {f["file"]: f["sha256"] for f in _file_rows(test)}
    meta = {
        "dataset": dataset_id,
        "display_name": test.display_name,
        "part": "test",
        "seed": seed,
        "num_images": int(len(bits)),
        "subset": test.subset,
        "source_checksums": checksums,
    }
    datasets.save_binarized(prep_tmp / "test.npz", bits, labels[order], order, meta)
    summary: dict[str, Any] = {
        "dataset": dataset_id,
        "display_name": test.display_name,
        "subset": test.subset,
        "seed": seed,
        "test": {
            "num_images": int(len(bits)),
            "label_counts": _label_counts(labels),
            "fraction_on": round(float(bits.mean()), 6),
            "packed_bits_sha256": hashlib.sha256(np.packbits(bits, axis=1)).hexdigest(),
            "files": _file_rows(test),
        },
        "train": None,
    }
    if test.subset:
        summary["test"]["subset_note"] = (
            f"{test.display_name} holds the first {test.count} of the {info.test.count} images "
            f"of the {info.display_name} test set; used because the full set was not available"
        )
    details: dict[str, Any] = {"dataset": dataset_id, "test_files": sorted(checksums),
                               "test_sources": _sources(test)}
    if test.subset:
        details["full_test_set_sources_tried"] = [portable_source(note) for note in test.notes]
    print(f"{test.display_name}: {len(bits)} test images binarized (seed {seed})")
    if train_data:
        train = datasets.fetch_split(dataset_id, "train", raw_tmp, mirror=mirror, progress=progress)
        train_gray, train_labels = datasets.read_split(train)
        train_meta = {
            "dataset": dataset_id,
            "display_name": info.display_name,
            "part": "train",
            "num_images": int(len(train_gray)),
            "subset": False,
            "source_checksums": {f["file"]: f["sha256"] for f in _file_rows(train)},
        }
        datasets.save_grayscale(prep_tmp / "train.npz", train_gray, train_labels, train_meta)
        summary["train"] = {
            "num_images": int(len(train_gray)),
            "label_counts": _label_counts(train_labels),
            "files": _file_rows(train),
        }
        details["train_files"] = sorted(train_meta["source_checksums"])
        details["train_sources"] = _sources(train)
        print(f"{info.display_name}: {len(train_gray)} grayscale training images")
    write_json_atomic(prep_tmp / "summary.json", summary)
    return summary, details


@stage_main
def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m stages.prepare --dataset <id>`."""
    parser = argparse.ArgumentParser(
        prog="python -m stages.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, help=f"one of: {', '.join(datasets.DATASETS)}")
    args = parser.parse_args(argv)
    block = load_params("prepare")["prepare"] or {}
    seed, train_data, mirror = _settings(block)
    if args.dataset not in datasets.DATASETS:  # the grid names it: say which parameter to fix
        raise McbitsError(
            f"unknown data set {args.dataset!r}",
            where="parameter grid.datasets",
            remedy=f"use data sets from: {', '.join(datasets.DATASETS)}",
        )
    if train_data == "auto":  # what train.source: auto trains from scratch needs
        train_data = args.dataset not in PUBLISHED_SPLITS
    prepare(args.dataset, seed=seed, train_data=bool(train_data), mirror=mirror)


if __name__ == "__main__":
    main()
