"""A step's decoder rows on a torch device (mcbits.vae.device_decoder: particle scores, pixel
frequencies) are the CPU kernels' integers: run here on torch's CPU device, the code a GPU runs."""

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
from mcbits.vae.device_decoder import DeviceDecoder
from mcbits.vae.models import load_model

NETWORKS = {seed: exact_vae_model(5, 20, seed=seed, scale=scale).network
            for seed, scale in ((1, 0.4), (2, 1.5), (3, 4.0))}  # large weights: saturated logits too


def _rows(network, log_num_bucket: int, count: int, rng: np.random.Generator) -> np.ndarray:
    buckets = rng.integers(0, 1 << log_num_bucket, size=(count, network.latent_dim))
    return exact.bucket_centres_fixed(log_num_bucket)[buckets].astype(np.float64)


@settings(max_examples=40, deadline=None)
@given(seed=st.sampled_from(sorted(NETWORKS)), log_num_bucket=st.integers(1, 12),
       lanes=st.integers(1, 4), repeat=st.integers(1, 12), precision=st.integers(1, 39),
       density=st.floats(0.0, 1.0), draw=st.integers(0, 2**32 - 1))
def test_device_rows_are_the_cpu_kernels_integers(seed, log_num_bucket, lanes, repeat, precision,
                                                  density, draw):
    network = NETWORKS[seed]
    z = _rows(network, log_num_bucket, lanes * repeat, np.random.default_rng(draw))
    images = random_binary_images(lanes, seed=draw % 1000, density=density)
    # the definitions: the decoder's logits, turned into frequencies and scored by the CPU's kernels
    product, bias, frac_bits = network.logits_fixed(z)
    device = DeviceDecoder(network, "cpu")
    scores = device.log2prob(z, images, repeat, precision)
    assert scores.dtype == np.int64
    np.testing.assert_array_equal(
        scores, exact.logits_log2prob(product, frac_bits, images, repeat, precision, bias))
    freq1 = device.freq1(z, precision)
    assert freq1.dtype == np.int64
    np.testing.assert_array_equal(freq1, exact.pixel_freq1(product, frac_bits, precision, bias))


def _counting(device: DeviceDecoder, calls: list) -> DeviceDecoder:
    # the same device decoder, noting each call's method and row count
    class Counting:
        def log2prob(self, z, *args):
            calls.append(("log2prob", z.shape[0]))
            return device.log2prob(z, *args)

        def freq1(self, z, *args):
            calls.append(("freq1", z.shape[0]))
            return device.freq1(z, *args)

    return Counting()


@pytest.mark.parametrize(("coder", "particles", "lanes", "expected"), [
    # two lanes' particle rows a step (the last step has one lane); z_j's rows stay on the CPU
    ("ISBitsBackCoder", 12, 2, {("log2prob", 24), ("log2prob", 12)}),
    # more lanes than a compiled step takes: the pixels of all of them go to the device
    ("BitsBackCoder", 1, 17, {("freq1", 17)}),
])
def test_a_torch_device_model_codes_there_with_the_same_bits(tmp_path, coder, particles, lanes, expected):
    vae = load_model(save_tiny_checkpoint(tmp_path / "m.pt", latent_dim=6, hidden_dim=24, seed=8))
    on_numpy = exact_coding_model(vae, "numpy")
    on_device = exact_coding_model(vae, "cpu")  # torch's CPU device: the path --device cuda takes
    assert on_numpy.network.device_decoder is None
    assert isinstance(on_device.network.device_decoder, DeviceDecoder)
    calls: list = []
    on_device.network.device_decoder = _counting(on_device.network.device_decoder, calls)
    count = 2 * lanes - lanes // 2
    images = random_binary_images(count, seed=4)
    config = CoderConfig(coder=coder, num_particles=particles, lanes=lanes)
    message = make_coder(on_device, config).encode(images, threads=1)  # one lane group
    assert set(calls) == expected
    assert message.to_bytes() == make_coder(on_numpy, config).encode(images).to_bytes()
    np.testing.assert_array_equal(make_coder(on_numpy, config).decode(message.copy(), count), images)
    np.testing.assert_array_equal(make_coder(on_device, config).decode(message.copy(), count, threads=1),
                                  images)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA device on this machine")
def test_cuda_rows_are_the_cpu_kernels_integers():
    rng = np.random.default_rng(3)
    for network in NETWORKS.values():
        z = _rows(network, 8, 60, rng)
        images = random_binary_images(3, seed=5)
        device = DeviceDecoder(network, "cuda")
        for precision in (4, 16, 21, 39):
            product, bias, frac_bits = network.logits_fixed(z)
            expected = exact.logits_log2prob(product, frac_bits, images, 20, precision, bias)
            np.testing.assert_array_equal(device.log2prob(z, images, 20, precision), expected)
            np.testing.assert_array_equal(device.freq1(z, precision),
                                          exact.pixel_freq1(product, frac_bits, precision, bias))
