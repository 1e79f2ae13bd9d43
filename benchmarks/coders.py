"""Speed and rate of one coder on real images: encode, decode, check every image.

    python benchmarks/coders.py --checkpoint CKPT --coder NAME --num-particles N \
        --data IMAGES.npy [--images K] [--arithmetic exact|float] [--prop-mprec 20 ...]

Prints one JSON object (coder, num_particles, arithmetic, images, encode_s, decode_s, ideal_bpd,
net_bpd, total_bpd, decode_ok, ...). IMAGES.npy holds 0/1 uint8 images (n, 28, 28) or (n, 784).
The precision flags and their defaults are the CLI's (`mcbits encode`), which are the library's.
"""

from __future__ import annotations

import json
import os
import platform
import time

import click
import torch

from mcbits.cli.codec import load_binary_images, load_coding_model
from mcbits.cli.options import coder_options, config_from_options
from mcbits.coding.bitstream import images_digest
from mcbits.coding.coders import make_coder
from mcbits.vae.ideal import ideal_rate_with_error


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", "num_images", default=None, type=int, help="First K images [all].")
@click.option("--no-ideal", is_flag=True, help="Skip computing the ideal rate.")
@coder_options
def main(checkpoint, data, num_images, no_ideal, device, **options) -> None:
    config = config_from_options(options)
    arithmetic = config.arithmetic
    images = load_binary_images(data)
    images = images.reshape(images.shape[0], -1)[:num_images]
    model, _, vae = load_coding_model(checkpoint, arithmetic, device)
    c = make_coder(model, config)
    c.decode(c.encode(images[:2]), 2)  # compile (or load) the numba kernels outside the timed region

    start = time.perf_counter()
    message = c.encode(images)
    encode_s = time.perf_counter() - start
    net_bits, total_bits = message.net_bits, message.total_bits
    payload = message.to_bytes()

    start = time.perf_counter()
    decoded = c.decode(message, images.shape[0])
    decode_s = time.perf_counter() - start
    decode_ok = bool(
        images_digest(decoded) == images_digest(images) and message.is_initial
    )

    dims = images.size
    result = {
        "coder": config.coder,
        "num_particles": config.num_particles,
        "arithmetic": config.arithmetic,
        "device": device,
        "precisions": {k: getattr(config, k) for k in ("lprec", "bprec", "log_num_bucket", "prior_mprec",
                                                       "prop_mprec", "cond_mprec", "mprec")},
        "lanes": config.lanes,
        "whiten_prior": config.whiten_prior,
        "images": int(images.shape[0]),
        "encode_s": round(encode_s, 3),
        "decode_s": round(decode_s, 3),
        "images_per_s": round(images.shape[0] / (encode_s + decode_s), 1),
        "ideal_bpd": None,
        "net_bpd": net_bits / dims,
        "total_bpd": total_bits / dims,
        "message_bytes": len(payload),
        "decode_ok": decode_ok,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"torch threads {torch.get_num_threads()}",
    }
    if not no_ideal:
        name, ideal, stderr = ideal_rate_with_error(vae, images, config, eval_seed=config.seed)
        result["ideal_bound"] = name
        result["ideal_bpd"] = ideal
        result["ideal_stderr_bpd"] = stderr
        result["gap_pct"] = 100.0 * (result["net_bpd"] - ideal) / ideal
    print(json.dumps(result))


if __name__ == "__main__":
    main()
