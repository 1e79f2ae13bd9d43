"""Compress stage: code the first num_compress test images with one coder and one model, write the
bitstream, decode that file and check every image, and record the rates.

    python -m stages.compress --coder ISBitsBackCoder --particles 50 --train emnist-mnist \
        --test emnist-letters --bitstream bitstreams/x.mcb --metrics metrics/compress/x.json \
        --details details/compress/x.json [--iterative]

`--coder is-family` means BB-ELBO for one particle and BB-IS(N) otherwise (the rows of upstream's
first table). The model is checkpoints/<train>-n<particles>/model.pt. Reads the `compress` block.
The metrics file holds the rates a researcher compares across experiments (RUN_METRICS: a few
columns a run in `dvc exp show`); the details file what the run was (coder, model, data set,
settings, SHA-256s), the figures derived from the metrics (gap to the ideal rate, file bits/dim)
and how long it took.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcbits.coding.bitstream import decode_from_file, encode_to_file, read_header
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.registry import coder_label
from mcbits.data.checksums import file_sha256
from mcbits.data.datasets import load_binarized
from mcbits.errors import McbitsError, require_keys
from mcbits.progress import CodingProgress
from mcbits.vae.adapter import coding_model
from mcbits.vae.ideal import ideal_rate_with_error
from mcbits.vae.iterative import iterative_posterior, posterior_from_settings
from mcbits.vae.models import load_model
from stages import paths
from stages._common import int_param, load_params, num_images_param, stage_main, write_details, write_metrics

CODER_KEYS = ("lprec", "bprec", "log_num_bucket", "prior_mprec", "prop_mprec", "cond_mprec", "mprec",
              "seed", "lanes", "whiten_prior", "arithmetic")
# Defaults of the compress block's other optional scalars (coder settings default to CoderConfig's;
# num_compress has none: the stage requires it).
STAGE_DEFAULTS = {"decode_check": True, "eval_seed": 0}
# The tracked metrics of one coding run, in this order (every compress-like stage and headline).
# The gap (net vs ideal) and the file's bits/dim follow from these and the file, and are in the
# details and the tables: tracking them too would double the columns that change in an experiment.
RUN_METRICS = ("net_bpd", "total_bpd", "ideal_bpd", "ideal_stderr_bpd", "images", "decode_check")


def resolve_coder(coder: str, particles: int) -> str:
    if coder == "is-family":
        return "BitsBackCoder" if particles == 1 else "ISBitsBackCoder"
    return coder


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
    *, coder: str, particles: int, train: str, test: str, iterative: bool, params: dict[str, Any],
    bitstream: Path,
) -> dict[str, Any]:
    """Encode, decode-check and rate one run; return (tracked metrics, details)."""
    coder = resolve_coder(coder, particles)
    config = coder_config(params, coder, particles)
    eval_seed = int_param(params.get("eval_seed", STAGE_DEFAULTS["eval_seed"]), "compress.eval_seed",
                          maximum=(1 << 63) - 1)
    it_params = None
    if iterative:
        block = params.get("iterative") or {}
        it_params = {"steps": block.get("steps"), "lr": block.get("lr"), "seed": config.seed}
        if not isinstance(it_params["steps"], int) or not isinstance(it_params["lr"], (int, float)):
            raise McbitsError("compress.iterative needs integer steps and a numeric lr",
                              where="params.yaml: compress.iterative")
    images, _, meta = load_binarized(paths.prepared_test(test))
    num = num_images_param(params.get("num_compress"), "compress.num_compress", images.shape[0], test)
    images = images[:num]
    checkpoint = paths.model_path(train, particles)
    vae = load_model(checkpoint)
    model_sha = file_sha256(checkpoint)
    base = coding_model(vae, config.arithmetic)
    model = base
    if it_params:
        model = iterative_posterior(base, vae, steps=it_params["steps"], lr=float(it_params["lr"]),
                                    num_particles=particles, seed=config.seed)
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
        header, _ = read_header(bitstream)
        decoder_model = posterior_from_settings(base, header["posterior"], module=vae)
        start = time.perf_counter()
        progress = CodingProgress(num, f"decode {label}", show_rate=False)
        try:
            decoded = decode_from_file(bitstream, decoder_model, model_sha256=model_sha,
                                       progress=progress)
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
        "encode_s": round(encode_s, 3),
        "decode_s": None if decode_s is None else round(decode_s, 3),
        "images_per_s": round(num / (encode_s + (decode_s or 0.0)), 2),
        "coder_config": config.to_dict(),
    }
    assert tuple(metrics) == RUN_METRICS
    return metrics, details


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coder", required=True)
    parser.add_argument("--particles", type=int, required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--iterative", action="store_true")
    parser.add_argument("--bitstream", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--details", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("compress")["compress"]
    metrics, details = compress_item(coder=args.coder, particles=args.particles, train=args.train,
                                     test=args.test, iterative=args.iterative, params=params,
                                     bitstream=args.bitstream)
    write_metrics(args.metrics, metrics)
    write_details(args.details, details)
    print(f"{details['label']} {args.train}->{args.test}: net {metrics['net_bpd']:.4f} "
          f"(ideal {metrics['ideal_bpd']:.4f}, gap {details['gap_pct']:+.2f}%), "
          f"total {metrics['total_bpd']:.4f} bits/dim, decode check {metrics['decode_check']}")


if __name__ == "__main__":
    main()
