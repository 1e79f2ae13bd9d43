"""Zero-width posterior buckets (exact arithmetic): exact for every coder.

A bucket is only pushed with q(z|x) after it was popped (or looked up) with the same q, and a
zero-width bucket can never be popped, so the tables may leave far tails empty. These tests use a
posterior narrow enough that most of the 256 buckets of every latent have zero width.
"""

from __future__ import annotations

import numpy as np
import pytest
from coding_doubles import TinyModel

from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig


class NarrowModel(TinyModel):
    """TinyModel with posteriors ~50 times narrower (std ~0.01)."""

    def posterior_params(self, images, image_ids):
        mean, std = super().posterior_params(images, image_ids)
        return mean, std / 50.0


@pytest.mark.parametrize("coder,num", [("StochasticCoder", 1), ("BitsBackCoder", 1), ("ISBitsBackCoder", 5),
                                       ("CISBitsBackCoder", 5)])
@pytest.mark.parametrize("prop_mprec", [12, 16, 20])
def test_every_coder_round_trips_with_zero_width_buckets(coder, num, prop_mprec):
    model = NarrowModel(latent_dim=4, num_pixels=64, seed=2)
    images = model.sample_images(12, seed=3)
    table = model.posterior_table(images, np.arange(12), 8, prop_mprec)
    widths = np.diff(table, axis=-1)
    assert (widths == 0).mean() > 0.5  # most buckets are empty: the case under test
    config = CoderConfig(coder=coder, num_particles=num, prop_mprec=prop_mprec, lanes=3, seed=1)
    c = make_coder(model, config)
    initial = c.new_message()
    msg = c.encode(images)
    decoded = c.decode(msg, images.shape[0])
    np.testing.assert_array_equal(decoded, images)
    assert msg == initial and msg.is_initial


def test_zero_width_tables_cost_fewer_bits_than_one_unit_floors():
    # the same images and model: floors of one unit per bucket move mass into empty tails
    from mcbits.coding import exact, network

    model = NarrowModel(latent_dim=4, num_pixels=64, seed=2)
    images = model.sample_images(50, seed=4)
    mean, std = model.posterior_params(images, np.arange(50))
    m16, l16 = network.quantize_posterior(mean, np.log(std))
    empty = exact.posterior_cdf_table(m16, l16, 8, 12)
    floored = exact.posterior_cdf_table(m16, l16, 8, 12, floor_one=True)
    # -log2 of the largest bucket: what popping the likely bucket takes from the message
    def top_cost(t):
        return -np.log2(np.diff(t, axis=-1).max(axis=-1) / 2**12).sum()
    assert top_cost(empty) < top_cost(floored)
