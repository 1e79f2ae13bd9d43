"""The result tables built from per-run metrics records (mcbits.results.tables)."""

from __future__ import annotations

import pytest

from mcbits.results import tables


def _record(coder, n, net, total, file_bpd=None):
    rec = {"label": f"{coder}-{n}", "coder": coder, "num_particles": n, "train": "emnist-mnist",
           "test": "emnist-mnist", "iterative": False, "net_bpd": net, "total_bpd": total, "ideal_bpd": net,
           "gap_pct": 0.0, "images": 500, "decode_check": "passed"}
    if file_bpd is not None:
        rec["file_bpd"] = file_bpd
    return rec


def test_coupled_table_shows_net_total_and_file_rates():
    records = [_record("BitsBackCoder", 1, 0.235, 0.236, 0.237),
               _record("CISBitsBackCoder", 1, 0.2351, 0.2371),
               _record("ISBitsBackCoder", 5, 0.2301, 0.2349, 0.2357)]
    table, long = tables.coupled_table(records, "emnist-mnist", [1, 5])
    assert table.loc["1", "BB-IS"] == "0.2350 / 0.2360 / 0.2370"
    assert table.loc["1", "BB-CIS"] == "0.2351 / 0.2371"  # no file rate recorded: none shown
    assert table.loc["5", "BB-IS"] == "0.2301 / 0.2349 / 0.2357"
    assert set(long["file_bpd"].dropna()) == {0.237, 0.2357}


def _evaluation(dataset: str, n: int, nats: float, testset: str | None = None) -> dict:
    testset = testset or dataset
    return {"train_dataset": dataset, "train_particles": n, "testset": testset,
            "in_distribution": testset == dataset,
            "bounds": {"nll": {"nats": nats, "std_error_nats": 0.25, "bits_per_dim": nats / 543.4,
                               "num_particles": 5000}}}


def test_models_table_shows_each_models_nll_and_the_paper_only_for_mnist():
    evaluations = [_evaluation("mnist", 1, 87.5), _evaluation("mnist", 5, 86.0),
                   _evaluation("emnist-mnist", 1, 90.0), _evaluation("emnist-mnist", 1, 150.0, "mnist")]
    trainings = [{"dataset": "mnist", "num_particles": 1, "source": "train", "profile": "fast"},
                 {"dataset": "mnist", "num_particles": 5, "source": "train", "profile": "fast"},
                 {"dataset": "emnist-mnist", "num_particles": 1, "source": "published"}]
    table = tables.models_table(evaluations, trainings, ["emnist-mnist", "mnist"], [1, 5])
    assert list(table.index) == ["MNIST, N=1", "MNIST, N=5", "MNIST (original), N=1", "MNIST (original), N=5"]
    row = table.loc["MNIST (original), N=1"]
    assert row["Source"] == "trained (fast)" and row["-log p(x) (nats)"] == "87.50 ± 0.25"
    assert row["IWAE paper (nats)"] == "86.76" and row["gap"] == f"{100 * (87.5 / 86.76 - 1):+.2f}%"
    emnist = table.loc["MNIST, N=1"]  # the cross-set evaluation (150) is not the model's own
    assert emnist["Source"] == "published" and emnist["-log p(x) (nats)"] == "90.00 ± 0.25"
    assert emnist["IWAE paper (nats)"] == "–"  # EMNIST is not the paper's data set
    assert table.loc["MNIST, N=5", "-log p(x) (nats)"] == "–"  # no run: an empty cell, no number
    assert "87.50 ± 0.25" in tables.to_markdown(table)


def test_distribution_table_covers_every_data_set_pair():
    records = [{"coder": tables.is_coder(1)[0], "num_particles": 1, "train": tr, "test": te,
                "iterative": False, "net_bpd": 0.1 + i / 100, "total_bpd": 0.2, "ideal_bpd": 0.1}
               for i, (tr, te) in enumerate([(a, b) for a in "xyz" for b in "xyz"])]
    table, long = tables.distribution_table(records, ["x", "y", "z"], [1], {})
    assert list(table.columns) == ["x → x", "x → y", "x → z", "y → y", "y → x", "y → z",
                                   "z → z", "z → x", "z → y"]
    assert table.loc["BB-ELBO", "y → x"] == pytest.approx(0.13) and len(long) == 9
