"""The exact coding arithmetic: shipped tables, integer functions, fixed-point networks."""

from __future__ import annotations

import math
from statistics import NormalDist

import numba as nb
import numpy as np
import pytest
from coding_doubles import vae_layer_shapes
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mcbits.coding import exact, network, tablegen

_PHI = NormalDist()


def test_tables_match_their_checksum_and_the_generator():
    named = exact.tables()
    assert exact.tables_sha256(named) == exact.TABLE_SHA256
    rng = np.random.default_rng(0)
    for name, (_, _, entries, _) in tablegen.SPEC.items():
        assert named[name].shape == (entries,)
        for index in [0, entries - 1, *rng.integers(0, entries, size=12).tolist()]:
            assert named[name][index] == tablegen.table_entry(name, index), (name, index)
    assert named["log2e"][0] == tablegen.log2e_fixed()


def test_tables_are_monotone_where_their_functions_are():
    named = exact.tables()
    for name in ("tanh", "sigmoid", "phi", "log2", "exp2"):
        assert (np.diff(named[name]) >= 0).all(), name


def test_tampered_tables_are_refused(monkeypatch, tmp_path):
    with np.load(exact.TABLE_FILE) as npz:
        named = {k: npz[k].copy() for k in npz.files}
    named["tanh"][100] += 1
    bad = tmp_path / "fixed_point.npz"
    np.savez(bad, **named)
    monkeypatch.setattr(exact, "TABLE_FILE", bad)
    exact.tables.cache_clear()
    try:
        with pytest.raises(exact.McbitsError, match="checksum"):
            exact.tables()
    finally:
        exact.tables.cache_clear()


def test_bucket_edges_and_centres_follow_the_normal_quantiles():
    for lognb in (1, 4, 8, 12):
        k = 1 << lognb
        edges = exact.bucket_edges_fixed(lognb) / 65536
        centres = exact.bucket_centres_fixed(lognb) / (1 << exact.LATENT_BITS)
        want_edges = np.array([_PHI.inv_cdf(i / k) for i in range(1, k)])
        want_centres = np.array([_PHI.inv_cdf((i + 0.5) / k) for i in range(k)])
        assert np.abs(edges - want_edges).max() < 1e-4
        assert np.abs(centres - want_centres).max() < 5e-4
        assert (np.diff(edges) > 0).all()


@settings(max_examples=40, deadline=None)
@given(
    mean=st.floats(-40, 40), log_std=st.floats(-12, 12), precision=st.integers(9, 32),
    floor_one=st.booleans(),
)
def test_posterior_table_is_a_valid_cdf_close_to_the_gaussian(mean, log_std, precision, floor_one):
    m16, l16 = network.quantize_posterior(np.array([[mean]]), np.array([[log_std]]))
    cdf = exact.posterior_cdf_table(m16, l16, 8, precision, floor_one)[0, 0]
    assert cdf[0] == 0 and cdf[-1] == 1 << precision
    widths = np.diff(cdf)
    assert (widths >= (1 if floor_one else 0)).all()
    # against the exact Gaussian at the quantized parameters (2^-16) and the integer edges
    mu = m16[0, 0] / 65536
    sigma = math.exp(l16[0, 0] / 65536)
    edges = exact.bucket_edges_fixed(8) / 65536
    want = np.array([_PHI.cdf((e - mu) / sigma) for e in edges])
    spread = (1 << precision) - (256 if floor_one else 0)
    got = (cdf[1:-1] - (np.arange(1, 256) if floor_one else 0)) / spread
    # the table's interpolation and the 2^-24 lookup grid bound the error
    assert np.abs(got - want).max() < 1e-5 + 1.0 / spread


@settings(max_examples=60, deadline=None)
@given(logit=st.floats(-40, 40), precision=st.integers(1, 32))
def test_pixel_frequency_is_the_rounded_sigmoid(logit, precision):
    fixed = np.array([[math.floor(logit * 2**20)]], dtype=np.float64)
    freq = int(exact.pixel_freq1(fixed, 20, precision)[0, 0])
    assert 1 <= freq <= (1 << precision) - 1
    want = 1.0 / (1.0 + math.exp(-fixed[0, 0] / 2**20)) * (1 << precision)
    assert abs(freq - min(max(want, 1), (1 << precision) - 1)) <= 0.5 + want * 1e-5 + 1e-3


@settings(max_examples=100, deadline=None)
@given(st.integers(1, (1 << 40) - 1))
def test_log2_of_integers(value):
    cdf = np.array([[[0, value, value + 1]]], dtype=np.int64)
    got = exact.table_log2prob(cdf, np.zeros((1, 1, 1), dtype=np.int64), 0)[0, 0] / 2**32
    assert abs(got - math.log2(value)) < 1e-6


def test_bernoulli_log2prob_sums_the_outcomes():
    rng = np.random.default_rng(1)
    freq1 = rng.integers(1, 1 << 16, size=(5, 30))
    bits = rng.integers(0, 2, size=(5, 30)).astype(np.uint8)
    got = exact.bernoulli_log2prob(freq1, bits, 16) / 2**32
    want = np.where(bits == 1, np.log2(freq1), np.log2((1 << 16) - freq1)).sum(1) - 16 * 30
    assert np.abs(got - want).max() < 1e-4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-80, 80), min_size=1, max_size=64), st.integers(6, 32),
)
def test_categorical_table_sums_to_the_precision_and_follows_the_weights(log2w, precision):
    num = len(log2w)
    if num > 1 << precision:
        return
    fixed = np.floor(np.array([log2w]) * 2**32).astype(np.int64)
    table = exact.categorical_table(fixed, precision)[0, 0]
    freq = np.diff(table)
    assert table[0] == 0 and table[-1] == 1 << precision and (freq >= 1).all()
    w = 2.0 ** (np.array(log2w) - max(log2w))
    share = w / w.sum()
    assert np.abs(freq / (1 << precision) - share).max() < num * 2.0 ** -(precision - 1) + 1e-6


def test_categorical_refuses_what_does_not_fit():
    with pytest.raises(exact.McbitsError, match="mprec"):
        exact.categorical_table(np.zeros((1, 40), dtype=np.int64), 5)
    with pytest.raises(exact.McbitsError, match="mprec"):
        exact.categorical_table(np.zeros((1, 4), dtype=np.int64), 33)


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-30, 1e30))
def test_weight_scale_is_the_largest_power_of_two_that_fits(peak):
    s = network.weight_scale_bits(np.array([peak, -peak / 3]))
    assert math.ldexp(peak, s) <= 32767 < math.ldexp(peak, s + 1)


def _random_state(latent=6, hidden=12, pixels=784, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in vae_layer_shapes(latent, hidden, pixels).items():
        state[f"{name}.weight"] = rng.normal(0, scale, size=shape).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(0, scale, size=shape[0]).astype(np.float32)
    return state


def _reversed_blocked_matmul(a, b):
    # another summation order: inner dimension in reversed blocks of 7, accumulated back to front
    out = np.zeros((a.shape[0], b.shape[1]))
    for start in reversed(range(0, a.shape[1], 7)):
        out += a[:, start:start + 7] @ b[start:start + 7]
    return out


def _rowwise_matmul(a, b):
    return np.stack([np.dot(row, b) for row in a]) if len(a) else a @ b


def test_fixed_point_network_is_independent_of_gemm_order_and_batching():
    net = network.FixedPointVAE(_random_state())
    other = network.FixedPointVAE(_random_state(), matmul=_reversed_blocked_matmul)
    rowwise = network.FixedPointVAE(_random_state(), matmul=_rowwise_matmul)
    rng = np.random.default_rng(3)
    images = (rng.random((9, 784)) < 0.3).astype(np.uint8)
    m, s = net.posterior_fixed(images)
    for variant in (other, rowwise):
        m2, s2 = variant.posterior_fixed(images)
        assert np.array_equal(m, m2) and np.array_equal(s, s2)
    # batch composition: one image at a time gives the same integers
    for i in range(3):
        mi, si = net.posterior_fixed(images[i:i + 1])
        assert np.array_equal(mi[0], m[i]) and np.array_equal(si[0], s[i])
    z = exact.bucket_centres_fixed(8)[rng.integers(0, 256, size=(11, 6))]
    logits, bias, bits = net.logits_fixed(z)
    logits2, bias2, bits2 = other.logits_fixed(z)
    assert bits == bits2 and np.array_equal(logits, logits2) and np.array_equal(bias, bias2)
    assert np.array_equal(logits, np.rint(logits))  # integers, carried exactly in float64


def test_fixed_point_network_is_close_to_the_float_one():
    state = _random_state()
    net = network.FixedPointVAE(state)
    rng = np.random.default_rng(4)
    images = (rng.random((20, 784)) < 0.3).astype(np.float64)
    f = {k: v.astype(np.float64) for k, v in state.items()}
    h = np.tanh(images @ f["enc_fc1.weight"].T + f["enc_fc1.bias"])
    h = np.tanh(h @ f["enc_fc2.weight"].T + f["enc_fc2.bias"])
    mean = h @ f["enc_fc31.weight"].T + f["enc_fc31.bias"]
    m16, _ = net.posterior_fixed(images)
    assert np.abs(m16 / 65536 - mean).max() < 5e-3


def test_partial_sums_beyond_2_53_are_refused():
    state = _random_state()
    state["enc_fc1.bias"] = state["enc_fc1.bias"] * 0 + 1e20
    with pytest.raises(exact.McbitsError, match="2\\^53"):
        network.FixedPointVAE(state)


def test_non_finite_weights_are_refused():
    state = _random_state()
    state["dec_fc2.weight"][0, 0] = np.nan
    with pytest.raises(exact.McbitsError, match="non-finite"):
        network.FixedPointVAE(state)


def test_fused_logit_scores_equal_frequency_then_score():
    rng = np.random.default_rng(5)
    logits = np.floor(rng.normal(0, 6, size=(12, 40)) * 2**18)
    images = rng.integers(0, 2, size=(4, 40)).astype(np.uint8)
    for precision in (8, 16, 24):  # 24: above the cached-log2 range
        bias = np.floor(rng.normal(0, 2, size=40) * 2**18)
        fused = exact.logits_log2prob(logits, 18, images, 3, precision, bias)
        freq1 = exact.pixel_freq1(logits, 18, precision, bias)
        assert np.array_equal(freq1, exact.pixel_freq1(logits + bias, 18, precision))
        two_step = exact.bernoulli_log2prob(freq1, np.repeat(images, 3, axis=0), precision)
        assert np.array_equal(fused, two_step)


@nb.njit(cache=False)
def _log2_by_frexp(values, log2_table, out):
    # the former definition of exact._log2_fixed (frexp of the exactly representable float)
    for i in range(values.shape[0]):
        f = values[i]
        n = math.frexp(np.float64(f))[1] - 1
        m24 = exact._to_bits(f, n, 24) - (1 << 24)
        out[i] = (n << 32) + exact._lookup(m24, log2_table, 0, 10)


@nb.njit(cache=False)
def _log2_now(values, log2_table, out):
    for i in range(values.shape[0]):
        out[i] = exact._log2_fixed(values[i], log2_table)


def test_log2_from_the_bit_length_equals_log2_from_frexp():
    powers = np.int64(1) << np.arange(53, dtype=np.int64)
    rng = np.random.default_rng(3)
    values = np.concatenate([powers, powers[1:] - 1, powers + 1, rng.integers(1, 1 << 53, 5000),
                             np.arange(1, 1 << 12)]).astype(np.int64)
    values = values[(values >= 1) & (values < (1 << 53))]
    table = exact.tables()["log2"]
    want, got = np.empty_like(values), np.empty_like(values)
    _log2_by_frexp(values, table, want)
    _log2_now(values, table, got)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("precision", [1, 2, 8, 16, 20, 24, 32, 39])
def test_saturation_cuts_are_where_the_frequency_leaves_its_ends(precision):
    low, high = exact._sigmoid_cuts(precision)
    top = (1 << precision) - 1
    x24 = np.array([[low - (1 << 30), low - 1, low, low + 1, high - 1, high, high + 1, high + (1 << 30)]],
                   dtype=np.float64)
    freq = exact.pixel_freq1(x24, 24, precision)[0]
    assert list(freq[:3]) == [1, 1, 1] and list(freq[5:]) == [top] * 3
    if precision > 1:
        assert freq[3] > 1 and freq[4] < top


@settings(max_examples=40, deadline=None)
@given(precision=st.integers(1, 39), seed=st.integers(0, 2**32 - 1), frac_bits=st.integers(10, 30))
def test_fused_logit_scores_around_the_saturation_cuts(precision, seed, frac_bits):
    # logits within a few units of either cut, where the fast path meets the table
    rng = np.random.default_rng(seed)
    low, high = exact._sigmoid_cuts(precision)
    centres = rng.choice([low, high], size=(6, 30))
    x24 = centres + rng.integers(-(1 << 14), 1 << 14, size=centres.shape)
    logits = np.floor(np.ldexp(x24.astype(np.float64), frac_bits - 24))
    images = rng.integers(0, 2, size=(2, 30)).astype(np.uint8)
    fused = exact.logits_log2prob(logits, frac_bits, images, 3, precision)
    freq1 = exact.pixel_freq1(logits, frac_bits, precision)
    assert np.array_equal(fused, exact.bernoulli_log2prob(freq1, np.repeat(images, 3, axis=0), precision))


@settings(max_examples=40, deadline=None)
@given(precision=st.sampled_from([4, 16, 24]), seed=st.integers(0, 2**32 - 1), frac_bits=st.integers(0, 40),
       magnitude=st.integers(1, 51))
def test_fused_logit_scores_at_any_magnitude_below_2_53(precision, seed, frac_bits, magnitude):
    # the fused kernel clamps (logit + bias) 2^-frac_bits in float64 before the table: logits and
    # biases of any size whose sums stay below 2^53 (what FixedPointLinear checks) score as the
    # integer path does, including those beyond int32 at 2^-24 (the integer path's own limit: the
    # logit at 2^-24 within int64)
    assume(magnitude + 1 + max(0, 24 - frac_bits) < 63)
    rng = np.random.default_rng(seed)
    limit = 1 << magnitude
    logits = rng.integers(-limit, limit, size=(4, 50)).astype(np.float64)
    bias = rng.integers(-limit, limit, size=50).astype(np.float64)
    images = rng.integers(0, 2, size=(2, 50)).astype(np.uint8)
    fused = exact.logits_log2prob(logits, frac_bits, images, 2, precision, bias)
    freq1 = exact.pixel_freq1(logits, frac_bits, precision, bias)
    assert np.array_equal(fused, exact.bernoulli_log2prob(freq1, np.repeat(images, 2, axis=0), precision))


def test_table_log2prob_with_and_without_the_cached_logarithms():
    rng = np.random.default_rng(4)
    cdf = np.sort(rng.integers(0, 1 << 16, size=(3, 5, 9)), axis=2)
    cdf[:, :, 0], cdf[:, :, -1] = 0, 1 << 16
    cdf[0, 0, 3] = cdf[0, 0, 4]  # a zero-width bucket (never popped; scored the same either way)
    symbols = rng.integers(0, 8, size=(3, 7, 5))
    cached = exact.table_log2prob(cdf, symbols, 16)
    uncached = np.empty_like(cached)
    exact._table_log2prob(cdf, symbols, 16, exact.tables()["log2"], np.zeros(0, dtype=np.int64), uncached)
    assert np.array_equal(cached, uncached)
