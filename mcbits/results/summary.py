"""The few figures an experiment is compared on, under names short enough for a terminal.

`summary(...)` nests every coding run's net and total rate, each model's test -log p(x) and each
baseline's rate under `<data> . <run> . <figure>`, e.g. `mnist.is50.net`: BB-IS(50) on the
mnist test set, coded with the model trained there. A run coded with a model trained on another
data set names both: `mnist>letters.is50.net`. Tools that flatten nested keys with dots (DVC's
`exp show`, `metrics diff`) then show columns of about 15 characters.
"""

from __future__ import annotations

from typing import Any

from mcbits.coding.registry import coder_spec


def short_names(datasets: list[str]) -> dict[str, str]:
    """Data set -> its short name: without the `emnist-` prefix unless that would clash."""
    stripped = {d: d.removeprefix("emnist-") for d in datasets}
    taken = list(stripped.values())
    return {d: s if taken.count(s) == 1 and s not in set(datasets) - {d} else d
            for d, s in stripped.items()}


def run_name(coder: str, num_particles: int, iterative: bool) -> str:
    """`elbo`, `is50`, `cis5`, `stoch`; `-if` when the posterior was refined by iterative inference."""
    spec = coder_spec(coder)
    base = spec.run + (str(int(num_particles)) if spec.particles else "")
    return base + ("-if" if iterative else "")


def _data_key(train: str, test: str, names: dict[str, str]) -> str:
    short = names.get(test, test)
    return short if train == test else f"{names.get(train, train)}>{short}"


def summary(runs: list[dict[str, Any]], evaluations: list[dict[str, Any]],
            baselines: list[dict[str, Any]], datasets: list[str]) -> dict[str, Any]:
    """The nested summary (see the module's doc) of coding runs (coder, num_particles, train, test,
    iterative, net_bpd, total_bpd), in-distribution evaluations (train_dataset, train_particles,
    testset, bounds.nll.nats) and baselines (test and one rate per codec)."""
    names = short_names(sorted({*datasets, *(r["test"] for r in runs), *(r["train"] for r in runs)}))
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(runs, key=lambda r: (r["train"], r["test"], r["coder"], r["num_particles"],
                                         bool(r.get("iterative")))):
        key = _data_key(r["train"], r["test"], names)
        run = run_name(r["coder"], r["num_particles"], bool(r.get("iterative")))
        out.setdefault(key, {})[run] = {"net": r["net_bpd"], "total": r["total_bpd"]}
    for e in sorted(evaluations, key=lambda e: (e["train_dataset"], e["train_particles"])):
        nll = e.get("bounds", {}).get("nll")
        if e["testset"] == e["train_dataset"] and nll is not None:
            key = _data_key(e["train_dataset"], e["testset"], names)
            out.setdefault(key, {})[f"n{int(e['train_particles'])}"] = {"nll": nll["nats"]}
    for b in sorted(baselines, key=lambda b: b["test"]):
        rates = {k: v for k, v in b.items() if k not in ("test", "images") and isinstance(v, float)}
        out.setdefault(names.get(b["test"], b["test"]), {}).update(rates)
    return out
