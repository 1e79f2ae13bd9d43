"""Portable exact coding: files decode bit for bit under other CPU kernels, thread counts, GEMM
backends and lane counts, and the committed golden bitstreams keep decoding and re-encoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from coding_doubles import random_binary_images, save_tiny_checkpoint
from golden_model import CASES, GOLDEN, MODEL_SHA256, encode_case, golden_images, golden_model

from mcbits.coding import bitstream

GOLDEN_FINGERPRINT = "0c78449194840c1a3efd5bf3e544b3330763344b585556c32c6855d583fad409"


def test_golden_model_is_the_one_the_files_were_written_with():
    assert golden_model().network.fingerprint() == GOLDEN_FINGERPRINT
    np.testing.assert_array_equal(np.load(GOLDEN / "images.npy"), golden_images())


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_bitstreams_decode_and_reencode_byte_for_byte(tmp_path, name):
    path = GOLDEN / f"{name}.mcb"
    assert path.stat().st_size < 4000
    decoded = bitstream.decode_from_file(path, golden_model(), model_sha256=MODEL_SHA256)
    np.testing.assert_array_equal(decoded, np.load(GOLDEN / "images.npy"))
    again = tmp_path / "again.mcb"
    encode_case(name, again)
    header, message = bitstream.read_header(path)
    header2, message2 = bitstream.read_header(again)
    assert message2 == message  # the coded message, byte for byte
    assert header2 == header
    assert header["portable"] is True and "encoder" not in header  # portable: no environment
    assert header["stored"] is False


_DECODE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from mcbits.loading import load_coding_model
    from mcbits.coding.bitstream import decode_from_file, read_header
    from mcbits.vae.iterative import posterior_from_settings
    threads, checkpoint, *files = sys.argv[1:]
    torch.set_num_threads(int(threads))
    out = {}
    for name in files:
        header, _ = read_header(name)
        base, sha, vae = load_coding_model(checkpoint, header["coder"]["arithmetic"])
        model = posterior_from_settings(base, header["posterior"], module=vae)
        out[name] = decode_from_file(name, model, model_sha256=sha).reshape(-1).tolist()
    print(json.dumps({"threads": torch.get_num_threads(), "images": out}))
    """
)

# what other CPUs compute: torch's generic kernels, MKL and oneDNN limited to AVX2
_ENVIRONMENTS = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "dnnl-avx2": {"DNNL_MAX_CPU_ISA": "AVX2"},
}


@pytest.fixture(scope="module")
def portable_files(tmp_path_factory):
    """A tiny checkpoint and exact-arithmetic files of every coder, lanes 1 and many."""
    import torch

    from mcbits.coding.coders import make_coder
    from mcbits.coding.config import CoderConfig
    from mcbits.loading import load_coding_model
    from mcbits.vae.iterative import iterative_posterior

    folder = tmp_path_factory.mktemp("portable")
    checkpoint = save_tiny_checkpoint(folder / "model.pt", latent_dim=6, hidden_dim=24, seed=5)
    images = random_binary_images(9, seed=3, density=0.25)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model, sha, _ = load_coding_model(checkpoint, "exact")
        files = []
        for coder, num, lanes in [("StochasticCoder", 1, 1), ("BitsBackCoder", 1, 9),
                                  ("ISBitsBackCoder", 3, 1), ("CISBitsBackCoder", 4, 4)]:
            path = folder / f"{coder}-{lanes}.mcb"
            config = CoderConfig(coder=coder, num_particles=num, lanes=lanes)
            # stored=False: keep the coded message (random images code above their raw bits)
            bitstream.encode_to_file(path, images, make_coder(model, config), model_sha256=sha,
                                     stored=False)
            files.append(str(path))
        # iterative inference, exact: portable too
        refined = iterative_posterior(model, None, steps=3, lr=0.05, num_particles=2, seed=1)
        path = folder / "is-if.mcb"
        config = CoderConfig(coder="ISBitsBackCoder", num_particles=2, lanes=3)
        bitstream.encode_to_file(path, images, make_coder(refined, config), model_sha256=sha,
                                 posterior=refined.settings(), stored=False)
        assert bitstream.read_header(path)[0]["portable"] is True
        files.append(str(path))
    finally:
        torch.set_num_threads(previous)
    return checkpoint, images, files


@pytest.mark.parametrize("env_name,threads", [("aten-default", 1), ("mkl-avx2", 8), ("dnnl-avx2", 2),
                                              ("plain", 8)])
def test_exact_files_decode_under_other_cpu_kernels_and_thread_counts(portable_files, env_name, threads):
    checkpoint, images, files = portable_files
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                                                              "DNNL_MAX_CPU_ISA")}
    env.update(_ENVIRONMENTS.get(env_name, {}))
    tests_dir = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join([tests_dir, env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", _DECODE_SCRIPT, str(threads), str(checkpoint), *files],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["threads"] == threads
    for name in files:
        np.testing.assert_array_equal(np.array(result["images"][name]).reshape(images.shape), images)


def test_torch_and_numpy_gemm_give_identical_integers_and_bits(tmp_path):
    import torch

    from mcbits.coding.coders import make_coder
    from mcbits.coding.config import CoderConfig
    from mcbits.vae.adapter import exact_coding_model
    from mcbits.vae.models import load_model

    vae = load_model(save_tiny_checkpoint(tmp_path / "m.pt", latent_dim=6, hidden_dim=24, seed=8))
    with_numpy = exact_coding_model(vae, "numpy")
    with_torch = exact_coding_model(vae, "cpu")
    images = random_binary_images(12, seed=4)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        a = with_numpy.network.posterior_fixed(images)
        b = with_torch.network.posterior_fixed(images)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    z = np.random.default_rng(1).integers(-8000, 8000, size=(20, 6))
    la, ba, fa = with_numpy.network.logits_fixed(z)
    lb, bb, fb = with_torch.network.logits_fixed(z)
    assert fa == fb and np.array_equal(la, lb) and np.array_equal(ba, bb)
    config = CoderConfig(coder="ISBitsBackCoder", num_particles=5, lanes=4)
    msg_numpy = make_coder(with_numpy, config).encode(images)
    msg_torch = make_coder(with_torch, config).encode(images)
    assert msg_numpy.to_bytes() == msg_torch.to_bytes()


def test_lane_count_changes_the_stream_but_never_the_decode(portable_files):
    # batch composition differs with the lane count; every file still decodes here exactly
    checkpoint, images, files = portable_files
    from mcbits.loading import load_coding_model
    from mcbits.vae.iterative import posterior_from_settings

    base, sha, vae = load_coding_model(checkpoint, "exact")
    for name in files:
        model = posterior_from_settings(base, bitstream.read_header(name)[0]["posterior"], module=vae)
        decoded = bitstream.decode_from_file(name, model, model_sha256=sha)
        np.testing.assert_array_equal(decoded.reshape(images.shape), images)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA device on this machine (the GEMM runs on the CPU)")
def test_cpu_and_cuda_gemms_code_the_same_bits(tmp_path):
    from mcbits.coding.coders import make_coder
    from mcbits.coding.config import CoderConfig
    from mcbits.vae.adapter import exact_coding_model
    from mcbits.vae.models import load_model

    vae = load_model(save_tiny_checkpoint(tmp_path / "m.pt", latent_dim=6, hidden_dim=24, seed=9))
    cpu, cuda = exact_coding_model(vae, "numpy"), exact_coding_model(vae, "cuda")
    images = random_binary_images(16, seed=6)
    for coder, num in [("BitsBackCoder", 1), ("ISBitsBackCoder", 4), ("CISBitsBackCoder", 4)]:
        config = CoderConfig(coder=coder, num_particles=num, lanes=4)
        on_cpu = make_coder(cpu, config).encode(images)
        on_cuda = make_coder(cuda, config).encode(images)
        assert on_cpu.to_bytes() == on_cuda.to_bytes()
        # and each decodes the other's message
        np.testing.assert_array_equal(make_coder(cuda, config).decode(on_cpu.copy(), 16), images)
        np.testing.assert_array_equal(make_coder(cpu, config).decode(on_cuda.copy(), 16), images)
