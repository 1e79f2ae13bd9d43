"""Compress stage: code the first num_compress test images with one coder and one model, write the
bitstream, decode that file and check every image, and record the rates.

    python -m stages.compress --kind is --particles 50 --train emnist-mnist --test emnist-letters

The kinds (RUN_KINDS): `is` is BB-ELBO for one particle and BB-IS(N) otherwise (the rows of
upstream's first table), `cis` BB-CIS(N), `stochastic` the stochastic coder, `is-if` `is` with the
posterior refined by iterative inference (the `iterative` block). The model is
checkpoints/<train>-n<particles>/model.pt. Reads the `compress` block. Writes
bitstreams/<run>.mcb, metrics/compress/<run>.json (the rates: RUN_METRICS) and
details/compress/<run>.json (what the run was: coder, model, data set, settings, SHA-256s, the gap
to the ideal rate, the file's bits/dim), with <run> = <kind>-n<N>_<train>_on_<test>; how long it
took goes to logs/compress/<run>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcbits.coding.bitstream import Bitstream, encode_to_file
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.limits import IterativeSettings
from mcbits.coding.registry import IS_FAMILY, coder_label, resolve_coder
from mcbits.data.datasets import load_binarized
from mcbits.errors import McbitsError, require_keys
from mcbits.loading import load_coding_model, model_for
from mcbits.progress import CodingProgress
from mcbits.vae.ideal import ideal_rate_with_error
from mcbits.vae.iterative import iterative_posterior
from stages import paths
from stages._common import (
    int_param,
    load_params,
    num_images_param,
    stage_main,
    write_details,
    write_log,
    write_metrics,
)

CODER_KEYS = ("lprec", "bprec", "log_num_bucket", "prior_mprec", "prop_mprec", "cond_mprec", "mprec",
              "seed", "lanes", "whiten_prior", "arithmetic")
# Defaults of the compress block's other optional scalars (coder settings default to CoderConfig's;
# num_compress has none: the stage requires it).
STAGE_DEFAULTS = {"decode_check": True, "eval_seed": 0}
# The tracked metrics of one coding run, in this order (every compress-like stage and headline).
# The gap (net vs ideal) and the file's bits/dim follow from these and the file, and are in the
# details and the tables: tracking them too would double the columns that change in an experiment.
RUN_METRICS = ("net_bpd", "total_bpd", "ideal_bpd", "ideal_stderr_bpd", "images", "decode_check")


# Run kind -> (coder or family, iterative inference); the is-family is BB-ELBO for one particle,
# else BB-IS(N) (mcbits.coding.registry).
RUN_KINDS = {"is": (IS_FAMILY, False), "cis": ("CISBitsBackCoder", False),
             "stochastic": ("StochasticCoder", False), "is-if": (IS_FAMILY, True)}


def coder_config(params: dict[str, Any], coder: str, particles: int) -> CoderConfig:
    """The coder config from the compress block; McbitsError names a bad parameter at once."""
    require_keys(params, CODER_KEYS, "compress block lacks", where="params.yaml: compress",
                 remedy="restore the keys from the repository's params.yaml")
    int_param(params["seed"], "compress.seed", maximum=(1 << 63) - 1)
    values = {k: params[k] for k in CODER_KEYS}
    try:
        return CoderConfig(coder=coder, num_particles=particles, **values).validated()
    except McbitsError as err:
        raise McbitsError(err.what, where=f"params.yaml: compress ({err.where})", remedy=err.remedy) from err


def compress_item(
    *, coder: str, particles: int, train: str, test: str, iterative: dict[str, Any] | None,
    params: dict[str, Any],
    bitstream: Path,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Encode, decode-check and rate one run; return (rates, details, timings)."""
    coder = resolve_coder(coder, particles)
    config = coder_config(params, coder, particles)
    eval_seed = int_param(params.get("eval_seed", STAGE_DEFAULTS["eval_seed"]), "compress.eval_seed",
                          maximum=(1 << 63) - 1)
    settings = it_params = None
    if iterative is not None:  # validated here, as the header and the decoder will
        settings = IterativeSettings(steps=iterative.get("steps"), lr=iterative.get("lr"),
                                     num_particles=particles, seed=config.seed,
                                     where="params.yaml: iterative")
        it_params = {"steps": settings.steps, "lr": settings.lr, "seed": settings.seed}
    images, _, meta = load_binarized(paths.prepared_test(test))
    num = num_images_param(params.get("num_compress"), "compress.num_compress", images.shape[0], test)
    images = images[:num]
    base, model_sha, vae = load_coding_model(paths.model_path(train, particles), config.arithmetic)
    model = base if settings is None else iterative_posterior(base, vae, settings)
    label = coder_label(config.coder, particles)
    if it_params:
        label += f"-IF({it_params['steps']})"

    progress = CodingProgress(num, f"{label} {train}->{test}")
    start = time.perf_counter()
    try:
        result = encode_to_file(bitstream, images, make_coder(model, config), model_sha256=model_sha,
                                posterior=model.settings() if it_params else None, progress=progress)
    finally:
        progress.close()
    encode_s = time.perf_counter() - start

    decode_s = None
    check = "skipped"
    if params.get("decode_check", STAGE_DEFAULTS["decode_check"]):
        start = time.perf_counter()
        progress = CodingProgress(num, f"decode {label}", show_rate=False)
        try:  # as `mcbits decode` does: the file's header alone says which model decodes it
            stream = Bitstream.open(bitstream)
            decoded = stream.decode(model_for(stream.header, base, vae, str(bitstream)),
                                    model_sha256=model_sha, progress=progress)
        except McbitsError as err:
            raise McbitsError(f"decode check failed: {err.what}", where=str(bitstream),
                              remedy=err.remedy) from err
        finally:
            progress.close()
        decode_s = time.perf_counter() - start
        if not np.array_equal(decoded.reshape(num, -1), images):
            raise McbitsError("decode check failed: decoded images differ", where=str(bitstream))
        check = "passed"

    bound_name, ideal_bpd, ideal_stderr = ideal_rate_with_error(vae, images, config, eval_seed=eval_seed,
                                                                iterative=it_params)
    dims = result.num_dims
    net_bpd = result.net_bits / dims
    metrics = {
        "net_bpd": net_bpd,
        "total_bpd": result.message_bits / dims,
        "ideal_bpd": ideal_bpd,
        "ideal_stderr_bpd": ideal_stderr,
        "images": num,
        "decode_check": check,
    }
    details = {
        "label": label,
        "coder": config.coder,
        "num_particles": particles,
        "train": train,
        "test": test,
        "test_display_name": meta.get("display_name", test),
        "test_subset": bool(meta.get("subset", False)),
        "model": f"{train}-n{particles}",
        "model_sha256": model_sha,
        "iterative": it_params or False,
        "images": num,
        "dims": dims,
        "gap_pct": 100.0 * (net_bpd - ideal_bpd) / ideal_bpd,
        "file_bpd": result.file_bpd,
        "ideal_bound": bound_name,
        "initial_bits": result.initial_bits,
        "file_bytes": result.file_bytes,
        "coder_config": config.to_dict(),
    }
    timings = {"encode_s": round(encode_s, 3), "decode_s": None if decode_s is None else round(decode_s, 3),
               "images_per_s": round(num / (encode_s + (decode_s or 0.0)), 2)}
    return metrics, details, timings


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", required=True, choices=sorted(RUN_KINDS))
    parser.add_argument("--particles", type=int, required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    args = parser.parse_args(argv)
    coder, refine = RUN_KINDS[args.kind]
    params = load_params("compress", *(["iterative"] if refine else []))
    run = paths.coding_run(args.kind, args.particles, args.train, args.test)
    metrics, details, timings = compress_item(
        coder=coder, particles=args.particles, train=args.train, test=args.test,
        iterative=(params["iterative"] or {}) if refine else None, params=params["compress"],
        bitstream=run.bitstream)
    write_metrics(run.metrics, metrics)
    write_details(run.details, details)
    write_log(run.log, timings)
    print(f"{details['label']} {args.train}->{args.test}: net {metrics['net_bpd']:.4f} "
          f"(ideal {metrics['ideal_bpd']:.4f}, gap {details['gap_pct']:+.2f}%), "
          f"total {metrics['total_bpd']:.4f} bits/dim, decode check {metrics['decode_check']}")


if __name__ == "__main__":
    main()
