"""A step's particle scores on a torch device (mcbits.vae.device_scores) are the CPU kernels'
integers: run here on torch's CPU device, the code a GPU runs."""

from __future__ import annotations

import numpy as np
import pytest
from coding_doubles import exact_vae_model, random_binary_images, save_tiny_checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st

from mcbits.coding import exact
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.vae.adapter import exact_coding_model
from mcbits.vae.device_scores import DeviceRowScorer
from mcbits.vae.models import load_model

NETWORKS = {seed: exact_vae_model(5, 20, seed=seed, scale=scale).network
            for seed, scale in ((1, 0.4), (2, 1.5), (3, 4.0))}  # large weights: saturated logits too


@settings(max_examples=40, deadline=None)
@given(seed=st.sampled_from(sorted(NETWORKS)), log_num_bucket=st.integers(1, 12),
       lanes=st.integers(1, 4), repeat=st.integers(1, 12), precision=st.integers(1, 39),
       density=st.floats(0.0, 1.0), draw=st.integers(0, 2**32 - 1))
def test_device_scores_are_the_cpu_kernels_integers(seed, log_num_bucket, lanes, repeat, precision,
                                                    density, draw):
    network = NETWORKS[seed]
    rng = np.random.default_rng(draw)
    buckets = rng.integers(0, 1 << log_num_bucket, size=(lanes * repeat, network.latent_dim))
    z = exact.bucket_centres_fixed(log_num_bucket)[buckets].astype(np.float64)
    images = random_binary_images(lanes, seed=draw % 1000, density=density)
    # the definition: the decoder's logits, scored by the CPU's kernel
    product, bias, frac_bits = network.logits_fixed(z)
    expected = exact.logits_log2prob(product, frac_bits, images, repeat, precision, bias)
    got = DeviceRowScorer(network, "cpu")(z, images, repeat, precision)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_a_torch_device_model_scores_its_particles_there_with_the_same_bits(tmp_path):
    vae = load_model(save_tiny_checkpoint(tmp_path / "m.pt", latent_dim=6, hidden_dim=24, seed=8))
    on_numpy = exact_coding_model(vae, "numpy")
    on_device = exact_coding_model(vae, "cpu")  # torch's CPU device: the path --device cuda takes
    assert on_numpy.network.row_scorer is None
    scorer = on_device.network.row_scorer
    assert isinstance(scorer, DeviceRowScorer)
    calls = []
    on_device.network.row_scorer = lambda *args: calls.append(args[0].shape[0]) or scorer(*args)
    images = random_binary_images(9, seed=4)
    config = CoderConfig(coder="ISBitsBackCoder", num_particles=12, lanes=2)
    message = make_coder(on_device, config).encode(images, threads=1)  # one group: both lanes a step
    assert calls and set(calls) == {24, 12}  # two lanes' particle rows a step; the last step has one lane
    assert message.to_bytes() == make_coder(on_numpy, config).encode(images).to_bytes()
    np.testing.assert_array_equal(make_coder(on_numpy, config).decode(message.copy(), 9), images)
    np.testing.assert_array_equal(make_coder(on_device, config).decode(message.copy(), 9), images)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA device on this machine")
def test_cuda_scores_are_the_cpu_kernels_integers():
    rng = np.random.default_rng(3)
    for network in NETWORKS.values():
        z = exact.bucket_centres_fixed(8)[rng.integers(0, 256, size=(60, network.latent_dim))]
        images = random_binary_images(3, seed=5)
        for precision in (4, 16, 21, 39):
            product, bias, frac_bits = network.logits_fixed(z)
            expected = exact.logits_log2prob(product, frac_bits, images, 20, precision, bias)
            got = DeviceRowScorer(network, "cuda")(z.astype(np.float64), images, 20, precision)
            np.testing.assert_array_equal(got, expected)
