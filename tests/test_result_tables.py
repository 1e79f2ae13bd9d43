"""The result tables built from per-run metrics records (mcbits.results.tables)."""

from __future__ import annotations

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
