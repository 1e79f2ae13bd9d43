"""Plan stage: decide, once for the whole grid, where each model comes from and how it is made.

    python -m stages.plan

Reads the `train` block and the grid; writes plans/<model>.json for every grid model: for an
imported model (train.source auto or published, upstream published the split) only what it is
(data set, particle count, sizes); for a trained one the full resolved training configuration
(profile, schedule, device, threads, seed, ...).

Why a stage of its own: the train stage depends on its model's plan file, not on params.yaml, so a
training parameter reruns exactly the models it shapes. `-S train.profile=paper` with published
models reruns this stage in a second, leaves every imported model's plan byte for byte as it was,
and so reruns no import; a bad value (`-S train.profile=nope`) fails here, naming the parameter.
"""

from __future__ import annotations

import argparse
from typing import Any

from mcbits.errors import McbitsError
from stages import paths
from stages._common import PUBLISHED_SPLITS, grid_items, load_params, stage_main, write_json_atomic
from stages.train_settings import SOURCES, resolved_source, train_config


def plan_for(dataset: str, num_particles: int, params: dict[str, Any]) -> dict[str, Any]:
    """The plan of one grid model: its source and, when trained, every setting that shapes it."""
    source = resolved_source(params.get("source", SOURCES[0]), dataset)
    # Checked for every model, imported ones included: a grid can mix sources, and a parameter
    # nothing uses should fail by name rather than pass unnoticed.
    config = train_config(num_particles, params)
    plan: dict[str, Any] = {
        "model": paths.model_name(dataset, num_particles),
        "dataset": dataset,
        "num_particles": int(num_particles),
        "source": source,
        "latent_dim": config.latent_dim,
        "hidden_dim": config.hidden_dim,
    }
    if source == "published":
        if dataset not in PUBLISHED_SPLITS:
            raise McbitsError(
                f"no published checkpoint exists for data set {dataset!r} (upstream published "
                f"{', '.join(PUBLISHED_SPLITS)} only)",
                where=f"parameter train.source=published, model {plan['model']}",
                remedy="train it from scratch: set train.source=train (or auto)",
            )
        plan["split"] = PUBLISHED_SPLITS[dataset]
    else:
        plan["training"] = config.to_dict()
    return plan


@stage_main
def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    params = load_params("train", "grid")
    items = grid_items(params["grid"])
    plans = {paths.train_plan(d, n): plan_for(d, n, params["train"] or {}) for d, n in items}
    paths.PLANS_ROOT.mkdir(parents=True, exist_ok=True)
    for stale in set(paths.PLANS_ROOT.glob("*.json")) - set(plans):
        stale.unlink()  # a model no longer in the grid
    for path, plan in plans.items():
        write_json_atomic(path, plan)
        print(f"{plan['model']}: {plan['source']}")


if __name__ == "__main__":
    main()
