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
from mcbits.coding.bitstream import images_digest
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.vae.ideal import ideal_rate_with_error

_DEFAULTS = CoderConfig()


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--coder", required=True)
@click.option("--num-particles", default=1, show_default=True, type=int)
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--images", "num_images", default=None, type=int, help="First K images [all].")
@click.option("--lanes", default=_DEFAULTS.lanes, show_default=True, type=int)
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, type=int)
@click.option("--arithmetic", type=click.Choice(["exact", "float"]), default=_DEFAULTS.arithmetic,
              show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Where exact GEMMs run (cpu, cuda).")
@click.option("--lprec", default=_DEFAULTS.lprec, show_default=True, type=int)
@click.option("--bprec", default=_DEFAULTS.bprec, show_default=True, type=int)
@click.option("--log-num-bucket", default=_DEFAULTS.log_num_bucket, show_default=True, type=int)
@click.option("--prior-mprec", default=_DEFAULTS.prior_mprec, show_default=True, type=int)
@click.option("--prop-mprec", default=_DEFAULTS.prop_mprec, show_default=True, type=int)
@click.option("--cond-mprec", default=_DEFAULTS.cond_mprec, show_default=True, type=int)
@click.option("--mprec", default=_DEFAULTS.mprec, show_default=True, type=int)
@click.option("--no-ideal", is_flag=True, help="Skip computing the ideal rate.")
def main(checkpoint, coder, num_particles, data, num_images, lanes, seed, arithmetic, device, lprec, bprec,
         log_num_bucket, prior_mprec, prop_mprec, cond_mprec, mprec, no_ideal) -> None:
    images = load_binary_images(data)
    images = images.reshape(images.shape[0], -1)[:num_images]
    model, _, vae = load_coding_model(checkpoint, arithmetic, device)
    config = CoderConfig(coder=coder, num_particles=num_particles, lanes=lanes, seed=seed,
                         arithmetic=arithmetic, lprec=lprec, bprec=bprec, log_num_bucket=log_num_bucket,
                         prior_mprec=prior_mprec, prop_mprec=prop_mprec, cond_mprec=cond_mprec,
                         mprec=mprec).validated()
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
        "arithmetic": config.arithmetic,
        "device": device,
        "precisions": {k: getattr(config, k) for k in ("lprec", "bprec", "log_num_bucket", "prior_mprec",
                                                       "prop_mprec", "cond_mprec", "mprec")},
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
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"torch threads {torch.get_num_threads()}",
    }
    if not no_ideal:
        name, ideal, stderr = ideal_rate_with_error(vae, images, config, eval_seed=seed)
        result["ideal_bound"] = name
        result["ideal_bpd"] = ideal
        result["ideal_stderr_bpd"] = stderr
        result["gap_pct"] = 100.0 * (result["net_bpd"] - ideal) / ideal
    print(json.dumps(result))


if __name__ == "__main__":
    main()
