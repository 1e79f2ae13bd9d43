"""Speed and rate of one coder on real images: encode, decode, check every image.

    python benchmarks/coders.py --checkpoint CKPT --coder NAME --num-particles N \
        --data IMAGES.npy [--images K]

Prints one JSON object (coder, num_particles, images, encode_s, decode_s, ideal_bpd, net_bpd,
total_bpd, decode_ok, ...). IMAGES.npy holds 0/1 uint8 images (n, 28, 28) or (n, 784).
"""

from __future__ import annotations

import json
import os
import platform
import time

import click
import torch

from mcbits.cli.codec import load_binary_images, load_coding_model
from mcbits.coding.bitstream import images_digest
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.registry import ideal_bound_name
from mcbits.vae import bounds


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--coder", required=True)
@click.option("--num-particles", default=1, show_default=True, type=int)
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", "num_images", default=None, type=int, help="First K images [all].")
@click.option("--lanes", default=1, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-ideal", is_flag=True, help="Skip computing the ideal rate.")
def main(checkpoint, coder, num_particles, data, num_images, lanes, seed, no_ideal) -> None:
    images = load_binary_images(data)
    images = images.reshape(images.shape[0], -1)[:num_images]
    model, _ = load_coding_model(checkpoint)
    config = CoderConfig(coder=coder, num_particles=num_particles, lanes=lanes, seed=seed).validated()
    c = make_coder(model, config)
    c.encode(images[:2])  # compile the numba kernels outside the timed region

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
        "lanes": config.lanes,
        "images": int(images.shape[0]),
        "encode_s": round(encode_s, 3),
        "decode_s": round(decode_s, 3),
        "images_per_s": round(images.shape[0] / (encode_s + decode_s), 1),
        "ideal_bpd": None,
        "net_bpd": net_bits / dims,
        "total_bpd": total_bits / dims,
        "message_bytes": len(payload),
        "decode_ok": decode_ok,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    if not no_ideal:
        vae = model.module
        est = bounds.evaluate_bounds(vae, images, [config.num_particles], seed=seed,
                                     cis_seed=config.seed)
        result["ideal_bound"] = ideal_bound_name(config.coder, config.num_particles)
        result["ideal_bpd"] = est["bounds"][result["ideal_bound"]]["bits_per_dim"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
