"""Quantized distributions: valid integer CDFs, lookups that agree with them, exact log-probabilities."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcbits.coding import distributions as dist
from mcbits.errors import McbitsError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# Buckets of the prior


@pytest.mark.parametrize("log_num_bucket", [1, 3, 8, 10])
def test_bucket_edges_and_centres_split_the_prior_into_equal_masses(log_num_bucket):
    k = 1 << log_num_bucket
    edges = dist.bucket_edges(log_num_bucket)
    centres = dist.bucket_centres(log_num_bucket)
    assert edges.shape == (k - 1,) and centres.shape == (k,)
    assert (np.diff(edges) > 0).all() and (np.diff(centres) > 0).all()
    np.testing.assert_allclose(edges, -edges[::-1], atol=1e-12)  # symmetric about 0
    np.testing.assert_allclose(centres, -centres[::-1], atol=1e-12)
    normal = NormalDist()
    # each bucket holds 1/K of the mass; each centre is its bucket's mid-mass quantile
    np.testing.assert_allclose([normal.cdf(e) for e in edges], np.arange(1, k) / k, atol=1e-12)
    np.testing.assert_allclose([normal.cdf(c) for c in centres], (np.arange(k) + 0.5) / k, atol=1e-12)
    assert (centres[:-1] < edges).all() and (edges < centres[1:]).all()


def test_bucket_arrays_are_read_only():
    # They are cached: a caller writing into one would change every later coder's buckets.
    with pytest.raises(ValueError):
        dist.bucket_centres(8)[0] = 0.0
    with pytest.raises(ValueError):
        dist.bucket_edges(8)[0] = 0.0


@pytest.mark.parametrize("log_num_bucket,precision", [(8, 8), (8, 12), (1, 1), (4, 30)])
def test_uniform_prior_gives_every_bucket_the_same_frequency(log_num_bucket, precision):
    table = dist.uniform_prior_table(log_num_bucket, precision)
    k = 1 << log_num_bucket
    assert table.shape == (1, 1, k + 1) and table.dtype == np.int64
    assert table[0, 0, 0] == 0 and table[0, 0, -1] == 1 << precision
    assert (np.diff(table[0, 0]) == 1 << (precision - log_num_bucket)).all()


def test_uniform_prior_below_log_num_bucket_is_refused():
    with pytest.raises(McbitsError) as err:
        dist.uniform_prior_table(8, 7)
    assert err.value.where == "parameter prior_mprec"


# ---------------------------------------------------------------------------------------------
# Discretized Gaussian posteriors


@st.composite
def gaussian_cases(draw):
    log_num_bucket = draw(st.integers(1, 9))
    precision = draw(st.integers(log_num_bucket + 1, 48))
    b, d = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.5, 3.0, 40.0]))  # means near the buckets and far outside
    mean = rng.normal(0.0, scale, size=(b, d))
    log_std = rng.uniform(draw(st.sampled_from([-14.0, -4.0, -1.0])), 4.0, size=(b, d))
    return mean, np.exp(log_std), log_num_bucket, precision


@FAST
@given(case=gaussian_cases())
def test_gaussian_tables_rise_strictly_from_zero_to_full_mass(case):
    mean, std, log_num_bucket, precision = case
    table = dist.gaussian_cdf_table(mean, std, log_num_bucket, precision)
    k = 1 << log_num_bucket
    assert table.shape == (*mean.shape, k + 1) and table.dtype == np.int64
    assert (table[..., 0] == 0).all()
    assert (table[..., -1] == 1 << precision).all()
    assert (np.diff(table, axis=-1) >= 1).all()  # every bucket codable, however unlikely


@FAST
@given(case=gaussian_cases())
def test_gaussian_tables_follow_the_gaussian_cdf_at_the_edges(case):
    mean, std, log_num_bucket, precision = case
    table = dist.gaussian_cdf_table(mean, std, log_num_bucket, precision)
    k = 1 << log_num_bucket
    edges = dist.bucket_edges(log_num_bucket)
    for b in range(mean.shape[0]):
        for d in range(mean.shape[1]):
            normal = NormalDist(float(mean[b, d]), float(std[b, d]))
            exact = np.array([normal.cdf(float(e)) for e in edges]) * (1 << precision)
            # floor(Phi (2^m - K)) + k differs from Phi 2^m by at most K (plus float rounding)
            err = np.abs(table[b, d, 1:-1] - exact)
            assert (err <= k + 1e-9 * (1 << precision) + 1).all(), err.max()


@FAST
@given(case=gaussian_cases(), data=st.data())
def test_table_lookup_agrees_with_the_cdf(case, data):
    mean, std, log_num_bucket, precision = case
    table = dist.gaussian_cdf_table(mean, std, log_num_bucket, precision)
    b, d = mean.shape
    n = data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(0, 1 << precision, size=(b, n, d), dtype=np.int64)
    # include the boundary values: each bucket's first and last unit
    starts = table[:, None, :, :-1]
    pick = rng.integers(0, table.shape[-1] - 1, size=(b, n, d))
    first = np.take_along_axis(starts, pick[..., None], axis=-1)[..., 0]
    last = np.take_along_axis(table[:, None, :, 1:], pick[..., None], axis=-1)[..., 0] - 1
    for vals in (values, first, last):
        symbols = dist.table_lookup(table, vals)
        assert symbols.shape == vals.shape
        low = np.take_along_axis(np.broadcast_to(table[:, None], (b, n, d, table.shape[-1])),
                                 symbols[..., None], axis=-1)[..., 0]
        high = np.take_along_axis(np.broadcast_to(table[:, None], (b, n, d, table.shape[-1])),
                                  symbols[..., None] + 1, axis=-1)[..., 0]
        assert ((low <= vals) & (vals < high)).all()
    np.testing.assert_array_equal(dist.table_lookup(table, first), pick)
    np.testing.assert_array_equal(dist.table_lookup(table, last), pick)


def test_gaussian_table_puts_the_mass_where_the_posterior_is():
    centres = dist.bucket_centres(8)
    mean = np.array([[centres[200], centres[3]]])
    table = dist.gaussian_cdf_table(mean, np.full((1, 2), 1e-3), 8, 16)
    freqs = np.diff(table[0], axis=-1)
    assert freqs[0].argmax() == 200 and freqs[1].argmax() == 3
    assert freqs[0, 200] > 0.99 * (1 << 16)


@pytest.mark.parametrize("precision", [8, 7, 1])
def test_gaussian_precision_must_exceed_log_num_bucket(precision):
    with pytest.raises(McbitsError) as err:
        dist.gaussian_cdf_table(np.zeros((1, 1)), np.ones((1, 1)), 8, precision)
    assert err.value.where == "parameter prop_mprec"


@pytest.mark.parametrize("mean,std", [(np.nan, 1.0), (0.0, 0.0), (0.0, -1.0), (np.inf, 1.0), (0.0, np.nan)])
def test_gaussian_with_invalid_parameters_is_a_clear_error(mean, std):
    with pytest.raises(McbitsError) as err:
        dist.gaussian_cdf_table(np.array([[0.0, mean]]), np.array([[1.0, std]]), 8, 16)
    assert "posterior" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Bernoulli pixels


@pytest.mark.parametrize("precision", [1, 2, 8, 16, 32])
def test_bernoulli_freq1_keeps_both_outcomes_codable(precision):
    total = 1 << precision
    probs = np.array([0.0, 1.0, 1e-300, 1e-12, 0.5, 1 - 1e-12, 1 - 1e-17, 0.3, 0.999])
    freq1 = dist.bernoulli_freq1(probs, precision)
    assert freq1.dtype == np.int64
    assert ((freq1 >= 1) & (freq1 <= total - 1)).all()
    inside = (probs * total >= 1) & (probs * total <= total - 1)
    # away from the clipping the frequency is the probability rounded to the grid
    assert (np.abs(freq1[inside] - probs[inside] * total) <= 0.5).all()


def test_bernoulli_freq1_rejects_precision_zero():
    with pytest.raises(McbitsError) as err:
        dist.bernoulli_freq1(np.array([0.5]), 0)
    assert err.value.where == "parameter cond_mprec"


@FAST
@given(seed=st.integers(0, 2**32 - 1), precision=st.integers(1, 32), rows=st.integers(1, 4),
       pixels=st.integers(1, 50))
def test_bernoulli_log2prob_is_the_log_of_the_quantized_probabilities(seed, precision, rows, pixels):
    rng = np.random.default_rng(seed)
    freq1 = dist.bernoulli_freq1(rng.random((rows, pixels)), precision)
    bits = rng.integers(0, 2, size=(rows, pixels)).astype(np.uint8)
    got = dist.bernoulli_log2prob(freq1, bits, precision)
    freq = np.where(bits == 1, freq1, (1 << precision) - freq1)
    expected = np.log2(freq.astype(np.float64)).sum(axis=1) - precision * pixels
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    assert got.shape == (rows,) and (got <= 0).all()


# ---------------------------------------------------------------------------------------------
# Table log-probabilities and categoricals over particles


@FAST
@given(case=gaussian_cases(), data=st.data())
def test_table_log2prob_is_the_log_of_the_quantized_probabilities(case, data):
    mean, std, log_num_bucket, precision = case
    table = dist.gaussian_cdf_table(mean, std, log_num_bucket, precision)
    b, d = mean.shape
    n = data.draw(st.integers(1, 6))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    symbols = rng.integers(0, 1 << log_num_bucket, size=(b, n, d))
    got = dist.table_log2prob(table, symbols, precision)
    freqs = np.diff(table, axis=-1).astype(np.float64)  # (b, d, K)
    expected = np.zeros((b, n))
    for i in range(b):
        for j in range(n):
            expected[i, j] = sum(math.log2(freqs[i, k, symbols[i, j, k]]) for k in range(d)) - precision * d
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


@FAST
@given(seed=st.integers(0, 2**32 - 1), num=st.integers(1, 64), rows=st.integers(1, 4),
       spread=st.sampled_from([0.1, 5.0, 200.0]), data=st.data())
def test_categorical_table_is_a_valid_quantization_favouring_larger_weights(seed, num, rows, spread, data):
    precision = data.draw(st.integers(max(1, math.ceil(math.log2(num))), 24))
    rng = np.random.default_rng(seed)
    log_w = rng.normal(0.0, spread, size=(rows, num))
    table = dist.categorical_table(log_w, precision)
    total = 1 << precision
    assert table.shape == (rows, 1, num + 1) and table.dtype == np.int64
    assert (table[:, 0, 0] == 0).all() and (table[:, 0, -1] == total).all()
    freq = np.diff(table[:, 0], axis=-1)
    assert (freq >= 1).all()
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    # A weight larger by at least one grid unit of the 2^m - N free levels gets a larger
    # frequency; each frequency is near w * 2^m (floor, +1, and what rounding left over, which is
    # less than N, goes to one index).
    gap = (w[:, :, None] - w[:, None, :]) * (total - num)
    clearly_larger = gap >= 1.0 + 1e-9
    assert (freq[:, :, None] > freq[:, None, :])[clearly_larger].all()
    assert (np.abs(freq - w * total) <= num + 1).all()


def test_categorical_leftover_goes_to_the_largest_weight():
    # 3 nearly equal weights at precision 2: each gets 1 of the 4 codes, 1 is left over
    table = dist.categorical_table(np.array([[0.0, 0.01, 0.02]]), 2)
    freq = np.diff(table[0, 0])
    assert freq.sum() == 4
    assert freq.argmax() == 2


def test_categorical_table_of_a_single_particle_is_certain():
    table = dist.categorical_table(np.array([[-3.0], [12.0]]), 10)
    np.testing.assert_array_equal(table[:, 0], [[0, 1024], [0, 1024]])


def test_categorical_with_more_particles_than_codes_is_refused():
    with pytest.raises(McbitsError) as err:
        dist.categorical_table(np.zeros((1, 9)), 3)
    assert err.value.where == "parameter mprec"
    assert "4" in err.value.remedy  # ceil(log2 9)
