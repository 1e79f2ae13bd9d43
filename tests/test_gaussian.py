"""Posteriors coded without their tables (mcbits.coding.gaussian) give the table codec's bits, and
the fixed-point network's fast paths (few-row products, sparse first layer) its GEMM's integers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcbits.coding import exact, gaussian, network
from mcbits.coding.rans import Message

PROPERTY = settings(max_examples=60, deadline=None)


def _posteriors(rng: np.random.Generator, lanes: int, dims: int, wide: bool) -> tuple[np.ndarray, np.ndarray]:
    # wide: means and log stds across (and beyond) the clamps; else near a trained model's
    if wide:
        mean16 = rng.integers(-40 << 16, 40 << 16, size=(lanes, dims))
        log_std16 = rng.integers(-12 << 16, 12 << 16, size=(lanes, dims))
    else:
        mean16 = rng.integers(-3 << 16, 3 << 16, size=(lanes, dims))
        log_std16 = rng.integers(-5 << 16, 1 << 16, size=(lanes, dims))
    return mean16, log_std16


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), lanes=st.integers(1, 4), dims=st.integers(1, 60),
       log_num_bucket=st.integers(1, 10), extra_prec=st.integers(1, 30), bprec=st.sampled_from([8, 16, 32]),
       wide=st.booleans())
def test_pops_and_pushes_equal_the_table_codecs(seed, lanes, dims, log_num_bucket, extra_prec, bprec, wide):
    prec = min(log_num_bucket + extra_prec, 32 if bprec == 32 else 40)
    lprec = 32 if bprec == 32 else max(prec, 32)
    rng = np.random.default_rng(seed)
    mean16, log_std16 = _posteriors(rng, lanes, dims, wide)
    cdf = exact.posterior_cdf_table(mean16, log_std16, log_num_bucket, prec)
    rows = np.arange(dims)
    by_table = Message(lanes=lanes, lprec=lprec, bprec=bprec, seed=seed)
    lazy = by_table.copy()
    # pops from a fresh message draw words: the searches must land on the same buckets
    want = by_table.pop_table(cdf, rows, lanes, prec)
    got = gaussian.pop(lazy, mean16, log_std16, log_num_bucket, prec)
    assert np.array_equal(got, want) and lazy == by_table
    # pushes of other buckets (those with nonzero width) and back
    others = np.argmax(np.diff(cdf, axis=2) > 0, axis=2)  # each latent's first nonzero bucket
    for symbols in (got, others):
        by_table.push_table(cdf, rows, symbols, prec)
        gaussian.push(lazy, mean16, log_std16, symbols, log_num_bucket, prec)
        assert lazy == by_table
    assert lazy.to_bytes() == by_table.to_bytes()


def test_a_zero_width_bucket_cannot_be_pushed_and_shapes_are_checked():
    mean16 = np.array([[30 << 16]])  # far right: the leftmost buckets have zero width
    log_std16 = np.array([[-8 << 16]])
    assert exact.posterior_cdf_table(mean16, log_std16, 8, 16)[0, 0, 1] == 0
    msg = Message()
    with pytest.raises(ValueError, match="frequency 0"):
        gaussian.push(msg, mean16, log_std16, np.array([[0]]), 8, 16)
    with pytest.raises(ValueError, match="buckets"):
        gaussian.push(msg, mean16, log_std16, np.array([[0, 1]]), 8, 16)
    with pytest.raises(exact.McbitsError, match="prop_mprec"):
        gaussian.pop(msg, mean16, log_std16, 8, 8)


def _extreme_layer(rng: np.random.Generator, inputs: int, outputs: int, in_bits: int, in_limit: int):
    # weights at the 16-bit limit with random signs, so partial sums are as large as a layer allows
    weight = rng.choice([-1.0, 1.0], size=(outputs, inputs)) * rng.uniform(0.5, 1.0, size=(outputs, inputs))
    bias = rng.uniform(-1, 1, size=outputs)
    return network.FixedPointLinear(weight, bias, in_bits, in_limit, "test")


@pytest.mark.parametrize("rows", range(1, network.FEW_ROWS + 2))
def test_few_row_products_equal_blas_at_the_largest_inputs(rows):
    rng = np.random.default_rng(rows)
    limit = network.ACT_LIMIT
    for inputs, outputs in ((50, 200), (200, 784), (203, 7)):  # 203: the tail after blocks of four
        layer = _extreme_layer(rng, inputs, outputs, exact.ACT_BITS, limit)
        x = rng.choice([-limit, limit], size=(rows, inputs)).astype(np.float64)
        x[0, : inputs // 3] = rng.integers(-limit, limit + 1, size=inputs // 3)
        got = layer.product(x, network.numpy_matmul)
        assert np.array_equal(got, x @ layer.weight_t)
        assert got.dtype == np.float64 and got.shape == (rows, outputs)


def test_the_sparse_first_layer_equals_the_dense_one():
    rng = np.random.default_rng(7)
    layer = _extreme_layer(rng, 784, 200, 0, 1)
    for density in (0.0, 0.15, 1.0):
        images = (rng.random((5, 784)) < density).astype(np.uint8)
        assert np.array_equal(layer.tanh_sparse(images), layer.tanh(images.astype(np.float64),
                                                                    network.numpy_matmul))
