"""metrics/summary.json's short names: every coding run, model NLL and baseline under
`<data>.<run>.<figure>`, names short enough for `dvc exp show` at 120 columns."""

from __future__ import annotations

import pytest

from mcbits.coding.registry import CODER_SPECS
from mcbits.results.summary import run_name, short_names, summary


def _run(coder: str, n: int, train: str, test: str, iterative: bool = False) -> dict:
    return {"coder": coder, "num_particles": n, "train": train, "test": test, "iterative": iterative,
            "net_bpd": 0.2 + n / 1000, "total_bpd": 0.3 + n / 1000}


@pytest.mark.parametrize(("coder", "n", "iterative", "name"), [
    ("BitsBackCoder", 1, False, "elbo"), ("ISBitsBackCoder", 50, False, "is50"),
    ("CISBitsBackCoder", 5, False, "cis5"), ("StochasticCoder", 1, False, "stoch"),
    ("BitsBackCoder", 1, True, "elbo-if"), ("ISBitsBackCoder", 50, True, "is50-if"),
    ("bb-is", 5, False, "is5"),  # any accepted spelling
])
def test_run_names(coder, n, iterative, name):
    assert run_name(coder, n, iterative) == name


def test_every_coder_has_its_own_run_name():
    names = [spec.run for spec in CODER_SPECS]
    assert all(names) and len(set(names)) == len(names)


def test_short_names_drop_the_emnist_prefix_unless_it_clashes():
    assert short_names(["emnist-mnist", "emnist-letters"]) == {"emnist-mnist": "mnist",
                                                               "emnist-letters": "letters"}
    # original MNIST beside EMNIST's mnist split: both keep names that tell them apart
    names = short_names(["emnist-mnist", "mnist", "fashion-mnist"])
    assert names == {"emnist-mnist": "emnist-mnist", "mnist": "mnist", "fashion-mnist": "fashion-mnist"}


def test_summary_nests_runs_nll_and_baselines():
    datasets = ["emnist-mnist", "emnist-letters"]
    runs = [_run("ISBitsBackCoder", 50, "emnist-mnist", "emnist-mnist"),
            _run("BitsBackCoder", 1, "emnist-mnist", "emnist-letters"),
            _run("ISBitsBackCoder", 50, "emnist-mnist", "emnist-mnist", iterative=True)]
    evaluations = [
        {"train_dataset": "emnist-mnist", "train_particles": 5, "testset": "emnist-mnist",
         "bounds": {"nll": {"nats": 85.5}}},
        {"train_dataset": "emnist-mnist", "train_particles": 5, "testset": "emnist-letters",  # not shown
         "bounds": {"nll": {"nats": 130.0}}},
    ]
    baselines = [{"test": "emnist-letters", "images": 500, "gzip": 0.45, "png": 0.9}]
    out = summary(runs, evaluations, baselines, datasets)
    assert out == {
        "mnist": {"is50": {"net": 0.25, "total": 0.35}, "is50-if": {"net": 0.25, "total": 0.35},
                  "n5": {"nll": 85.5}},
        "mnist>letters": {"elbo": {"net": 0.201, "total": 0.301}},
        "letters": {"gzip": 0.45, "png": 0.9},
    }
