"""Speed and rate of one coder on real images: encode, decode, check every image.

    python benchmarks/coders.py --checkpoint CKPT --coder NAME --num-particles N \
        --data IMAGES.npy [--images K] [--arithmetic exact|float] [--prop-mprec 20 ...] \
        [--iterative-steps 50 --iterative-lr 0.01]

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

from mcbits.cli.codec import load_binary_images
from mcbits.cli.options import coder_options, config_from_options
from mcbits.coding.bitstream import images_digest
from mcbits.coding.coders import make_coder
from mcbits.loading import load_coding_model
from mcbits.vae.ideal import ideal_rate_with_error
from mcbits.vae.iterative import iterative_posterior, posterior_from_settings


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", "num_images", default=None, type=int, help="First K images [all].")
@click.option("--no-ideal", is_flag=True, help="Skip computing the ideal rate.")
@click.option("--iterative-steps", default=0, show_default=True,
              help="Iterative inference: refine each posterior by this many Adam steps (0: none).")
@click.option("--iterative-lr", default=0.01, show_default=True, help="Iterative inference's step size.")
@coder_options
def main(checkpoint, data, num_images, no_ideal, iterative_steps, iterative_lr, device, **options) -> None:
    config = config_from_options(options)
    arithmetic = config.arithmetic
    images = load_binary_images(data)
    images = images.reshape(images.shape[0], -1)[:num_images]
    base, _, vae = load_coding_model(checkpoint, arithmetic, device)
    model = base
    iterative = None
    if iterative_steps:
        iterative = {"steps": iterative_steps, "lr": iterative_lr, "seed": config.seed}
        model = iterative_posterior(base, vae, steps=iterative_steps, lr=iterative_lr,
                                    num_particles=config.num_particles, seed=config.seed)
    c = make_coder(model, config)
    c.decode(c.encode(images[:2]), 2)  # compile (or load) the numba kernels outside the timed region
    # the decoder rebuilds its model from the settings a file stores (no state shared with the encoder)
    decoder = make_coder(posterior_from_settings(base, model.settings() if iterative else {}, vae), config)

    start = time.perf_counter()
    message = c.encode(images)
    encode_s = time.perf_counter() - start
    net_bits, total_bits = message.net_bits, message.total_bits
    payload = message.to_bytes()

    start = time.perf_counter()
    decoded = decoder.decode(message, images.shape[0])
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
        "iterative": iterative,
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
        name, ideal, stderr = ideal_rate_with_error(vae, images, config, eval_seed=config.seed,
                                                    iterative=iterative)
        result["ideal_bound"] = name
        result["ideal_bpd"] = ideal
        result["ideal_stderr_bpd"] = stderr
        result["gap_pct"] = 100.0 * (result["net_bpd"] - ideal) / ideal
    print(json.dumps(result))


if __name__ == "__main__":
    main()
