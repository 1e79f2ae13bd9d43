"""splitmix64's compiled grid (the coders' prior offsets) against the elementwise numpy function."""

from __future__ import annotations

import numpy as np
import pytest

from mcbits.coding.hashing import splitmix64, top_bits_grid


@pytest.mark.parametrize("seed", [0, 4, 2**63 + 5, 2**64 - 1])
@pytest.mark.parametrize("bits", [1, 8, 16, 63])
def test_top_bits_grid_equals_the_elementwise_generator(seed, bits):
    ids = np.array([0, 1, 7, 9_999, 2**40], dtype=np.int64)
    counters = ids.astype(np.uint64)[:, None] * np.uint64(50) + np.arange(50, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        expected = (splitmix64(np.uint64(seed), counters) >> np.uint64(64 - bits)).astype(np.int64)
    got = top_bits_grid(seed, ids, 50, bits)
    assert got.shape == (5, 50) and got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() < (1 << bits)


def test_top_bits_grid_of_no_ids_is_empty():
    assert top_bits_grid(3, np.zeros(0, dtype=np.int64), 4, 8).shape == (0, 4)
