"""The four McBits coders on a tiny deterministic model (fast) and on the published checkpoints.

Every coder must decode the images exactly and leave the message in its initial state; the net
bits must match the sum of the quantized -log2 probabilities that the coder's steps realize.
"""

from __future__ import annotations

import gzip
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from coding_doubles import TinyModel, rans_rounding_bound, tiny_vae

from mcbits.coding import distributions as dist
from mcbits.coding import exact, network
from mcbits.coding.coders import (
    BitsBackCoder,
    CISBitsBackCoder,
    DecodeFailure,
    ISBitsBackCoder,
    StochasticCoder,
    make_coder,
)
from mcbits.coding.config import CoderConfig
from mcbits.coding.rans import Message
from mcbits.coding.registry import CODER_NAMES, CODER_SPECS, canonical_coder_name
from mcbits.errors import McbitsError

CODERS = [
    ("StochasticCoder", 1),
    ("BitsBackCoder", 1),
    ("ISBitsBackCoder", 1),
    ("ISBitsBackCoder", 4),
    ("CISBitsBackCoder", 1),
    ("CISBitsBackCoder", 4),
]
CODER_IDS = [f"{name}-{n}" for name, n in CODERS]


@pytest.fixture(scope="module")
def model() -> TinyModel:
    return TinyModel(latent_dim=4, num_pixels=64, seed=0)


@pytest.fixture(scope="module")
def images(model) -> np.ndarray:
    return model.sample_images(7, seed=1)  # 7: not a multiple of 3 lanes


def round_trip(coder, images: np.ndarray, message: Message | None = None) -> tuple[Message, float, int]:
    """Encode then decode; assert exactness. Returns the decoded-from message, net and total bits."""
    msg = coder.encode(images, message=message)
    net, total = msg.net_bits, msg.total_bits
    decoded = coder.decode(msg, images.shape[0])
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)
    return msg, net, total


# ---------------------------------------------------------------------------------------------
# Exact round trips


@pytest.mark.parametrize("whiten", [True, False], ids=["whiten", "plain-prior"])
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("coder_name,num", CODERS, ids=CODER_IDS)
def test_each_coder_decodes_exactly_and_restores_the_message(model, images, coder_name, num, lanes, whiten):
    coder = make_coder(model, CoderConfig(coder=coder_name, num_particles=num, lanes=lanes, seed=3,
                                          whiten_prior=whiten))
    msg, net, total = round_trip(coder, images)
    assert msg.is_initial
    assert msg == coder.new_message()
    assert 0 < net <= total


@pytest.mark.parametrize("coder_name,num", CODERS, ids=CODER_IDS)
def test_encoding_into_a_non_empty_message_then_decoding_restores_it(model, images, coder_name, num):
    coder = make_coder(model, CoderConfig(coder=coder_name, num_particles=num, lanes=2, seed=1))
    msg = coder.new_message()
    rng = np.random.default_rng(5)
    msg.push_bernoulli(rng.integers(1, 1 << 16, size=(2, 200)), rng.integers(0, 2, size=(2, 200)), 16)
    before = msg.copy()
    returned, _, _ = round_trip(coder, images, message=msg)
    assert returned is msg
    assert msg == before


@pytest.mark.parametrize("whiten", [True, False])
@pytest.mark.parametrize("lanes", [1, 3])
def test_bb_is_with_one_particle_is_bb_elbo_bit_for_bit(model, images, lanes, whiten):
    common = dict(lanes=lanes, seed=2, whiten_prior=whiten)
    elbo = make_coder(model, CoderConfig(coder="BitsBackCoder", **common)).encode(images)
    is1 = make_coder(model, CoderConfig(coder="ISBitsBackCoder", num_particles=1, **common)).encode(images)
    assert is1 == elbo  # the same heads and words, so exactly the same net and total bits
    assert is1.net_bits == elbo.net_bits


@pytest.mark.parametrize("coder_name,num", CODERS, ids=CODER_IDS)
def test_network_calls_are_batched_identically_at_encode_and_decode(images, coder_name, num):
    # The determinism rule: every network call that shapes a coding distribution must have a twin
    # on the other side with the same rows in the same order (a float kernel may give other bits
    # for another batch composition).
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    coder = make_coder(model, CoderConfig(coder=coder_name, num_particles=num, lanes=3))
    msg = coder.encode(images)
    enc_pixels, enc_posterior = list(model.pixel_calls), list(model.posterior_calls)
    model.pixel_calls.clear()
    model.posterior_calls.clear()
    coder.decode(msg, images.shape[0])

    def keys(calls):
        return sorted((c.shape, c.tobytes()) for c in calls)

    assert keys(model.pixel_calls) == keys(enc_pixels)
    if coder_name != "StochasticCoder":  # its decoder never needs q(z|x)
        assert keys(x for x, _ in model.posterior_calls) == keys(x for x, _ in enc_posterior)
        assert keys(i for _, i in model.posterior_calls) == keys(i for _, i in enc_posterior)


def test_more_lanes_than_images(model, images):
    coder = make_coder(model, CoderConfig(coder="CISBitsBackCoder", num_particles=3, lanes=4))
    msg, _, _ = round_trip(coder, images[:2])
    assert msg.is_initial


def test_single_image_and_progress_callback(model, images):
    coder = make_coder(model, CoderConfig(coder="ISBitsBackCoder", num_particles=2, lanes=3))
    seen: list[int] = []
    msg = coder.encode(images, progress=lambda count, m: seen.append(count), threads=1)
    assert seen == [3, 3, 1]
    seen.clear()
    coder.decode(msg, images.shape[0], progress=lambda count, m: seen.append(count), threads=1)
    assert seen == [1, 3, 3]  # decoding runs the steps backwards
    assert msg.is_initial
    seen.clear()
    msg = coder.encode(images, progress=lambda count, m: seen.append(count), threads=2)
    assert sum(seen) == images.shape[0]  # lane groups report their own images
    one = make_coder(model, CoderConfig(coder="BitsBackCoder"))
    assert round_trip(one, images[:1])[0].is_initial


@pytest.mark.parametrize(
    "overrides",
    [
        # the smallest precisions validation allows
        dict(coder="ISBitsBackCoder", num_particles=4, log_num_bucket=3, prior_mprec=3, prop_mprec=4,
             cond_mprec=1, mprec=2),
        dict(coder="CISBitsBackCoder", num_particles=4, log_num_bucket=3, prior_mprec=3, prop_mprec=4,
             cond_mprec=2, mprec=2),
        # small heads and words
        dict(coder="BitsBackCoder", lprec=16, bprec=8, prop_mprec=12),
        dict(coder="CISBitsBackCoder", num_particles=3, lprec=16, bprec=16, prop_mprec=12, cond_mprec=12),
        dict(coder="ISBitsBackCoder", num_particles=3, lprec=8, bprec=8, log_num_bucket=4, prior_mprec=4,
             prop_mprec=8, cond_mprec=8, mprec=4),
        # large heads with byte words: every push moves several words
        dict(coder="ISBitsBackCoder", num_particles=3, lprec=56, bprec=8, prop_mprec=30, cond_mprec=39,
             mprec=20),
        dict(coder="StochasticCoder", lprec=24, bprec=8, prior_mprec=20),
        # many particles for the index precision (N = 2^mprec)
        dict(coder="ISBitsBackCoder", num_particles=16, mprec=4),
        dict(coder="CISBitsBackCoder", num_particles=16, mprec=4),
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items() if k != "coder") + f"-{o['coder']}",
)
def test_round_trip_at_unusual_valid_precisions(model, images, overrides):
    coder = make_coder(model, CoderConfig(lanes=2, seed=7, **overrides))
    assert round_trip(coder, images)[0].is_initial


def test_coders_are_deterministic_given_the_seed(model, images):
    config = CoderConfig(coder="CISBitsBackCoder", num_particles=4, seed=9)
    a = make_coder(model, config).encode(images)
    b = make_coder(model, config).encode(images)
    assert a == b and a.to_bytes() == b.to_bytes()
    c = make_coder(model, CoderConfig(coder="CISBitsBackCoder", num_particles=4, seed=10)).encode(images)
    assert c.to_bytes() != a.to_bytes()


def test_decoding_with_another_seed_does_not_give_the_images_back(model, images):
    # The seed shapes the virtual words, the shifts and the prior offsets: the decoder must use
    # the encoder's (the bitstream header carries it).
    msg = make_coder(model, CoderConfig(coder="CISBitsBackCoder", num_particles=4, seed=1)).encode(images)
    other = make_coder(model, CoderConfig(coder="CISBitsBackCoder", num_particles=4, seed=2))
    try:
        decoded = other.decode(msg, images.shape[0])
    except DecodeFailure:
        return  # found out during the decode (a symbol outside its distribution)
    assert not np.array_equal(decoded, images)


@pytest.mark.parametrize("bad", [np.full((2, 64), 2), np.zeros((2, 63)), np.zeros((64,)), -np.ones((1, 64))])
def test_images_must_be_binary_rows_of_the_model_size(model, bad):
    coder = make_coder(model, CoderConfig())
    with pytest.raises(McbitsError):
        coder.encode(bad)


# ---------------------------------------------------------------------------------------------
# Net-bit accounting against the quantized probabilities


def _pixel_log2prob(model: TinyModel, buckets: np.ndarray, images: np.ndarray, config: CoderConfig):
    """log2 P(x|z) in bits (float) as the coder's arithmetic quantizes it, without recording a call."""
    probs = model.probs_of(buckets, config.log_num_bucket)
    if config.arithmetic == "exact":
        probs = np.clip(probs, 1e-12, 1 - 1e-12)
        logits = np.floor(np.ldexp(np.log(probs) - np.log1p(-probs), 24))
        freq1 = exact.pixel_freq1(logits, 24, config.cond_mprec)
        return exact.bernoulli_log2prob(freq1, images, config.cond_mprec) / 2.0**32
    freq1 = dist.bernoulli_freq1(probs, config.cond_mprec)
    return dist.bernoulli_log2prob(freq1, images, config.cond_mprec)


def _table_log2prob(q: np.ndarray, symbols: np.ndarray, config: CoderConfig) -> np.ndarray:
    if config.arithmetic == "exact":
        return exact.table_log2prob(q, symbols, config.prop_mprec) / 2.0**32
    return dist.table_log2prob(q, symbols, config.prop_mprec)


def _posterior_table(model: TinyModel, images: np.ndarray, ids: np.ndarray, config: CoderConfig):
    mean, std = model.posterior_params(images, ids)
    if config.arithmetic == "exact":
        mean16, log_std16 = network.quantize_posterior(mean, np.log(std))
        return exact.posterior_cdf_table(mean16, log_std16, config.log_num_bucket, config.prop_mprec)
    return dist.gaussian_cdf_table(mean, std, config.log_num_bucket, config.prop_mprec)


def _bound(config: CoderConfig, num_images: int, latent_dim: int, num_pixels: int, q_symbols: int):
    """Rounding bound for the pixels, the prior-coded latents and q_symbols posterior symbols."""
    lp, bp = config.lprec, config.bprec

    def per(prec: int) -> int:  # words a push of this precision can move
        return -(-prec // bp)

    return (
        rans_rounding_bound(num_images * num_pixels, per(config.cond_mprec), lp, config.cond_mprec)
        + rans_rounding_bound(num_images * latent_dim, per(config.prior_mprec), lp, config.prior_mprec)
        + rans_rounding_bound(q_symbols, per(config.prop_mprec), lp, config.prop_mprec)
    )


@pytest.mark.parametrize("lanes", [1, 3])
def test_stochastic_net_bits_are_minus_log2_p_of_x_and_z(images, lanes):
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    config = CoderConfig(coder="StochasticCoder", lanes=lanes, seed=4)
    msg = make_coder(model, config).encode(images, threads=1)  # one thread: calls in step order
    # the model saw one pixel_probs call per step, with the sampled buckets of its images
    z = np.concatenate(model.pixel_calls)
    ids = np.concatenate([ids for _, ids in model.posterior_calls])
    np.testing.assert_array_equal(ids, np.arange(images.shape[0]))
    log2_px = _pixel_log2prob(model, z, images, config)
    log2_pz = -config.log_num_bucket * model.latent_dim  # uniform over 2^8 buckets in each dim
    ideal = float(np.sum(-log2_px - log2_pz))
    assert msg.drawn.sum() == 0  # nothing is popped: no bits back
    assert abs(msg.net_bits - ideal) <= _bound(config, images.shape[0], 4, 64, 0)


@pytest.mark.parametrize("whiten", [True, False])
@pytest.mark.parametrize("lanes", [1, 3])
def test_bb_elbo_net_bits_are_the_quantized_negative_elbo_sample(images, lanes, whiten):
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    config = CoderConfig(coder="BitsBackCoder", lanes=lanes, seed=4, whiten_prior=whiten)
    msg = make_coder(model, config).encode(images, threads=1)  # one thread: calls in step order
    z = np.concatenate(model.pixel_calls)
    seen = np.concatenate([x for x, _ in model.posterior_calls])
    ids = np.concatenate([i for _, i in model.posterior_calls])
    np.testing.assert_array_equal(seen, images)
    q = _posterior_table(model, images, ids, config)
    log2_q = dist.table_log2prob(q, z[:, None, :], config.prop_mprec)[:, 0]
    log2_px = _pixel_log2prob(model, z, images, config)
    log2_pz = -config.log_num_bucket * model.latent_dim
    ideal = float(np.sum(-log2_px - log2_pz + log2_q))
    assert abs(msg.net_bits - ideal) <= _bound(config, images.shape[0], 4, 64, z.size)


@pytest.mark.parametrize("lanes", [1, 2])
def test_bb_is_net_bits_follow_its_steps(images, lanes):
    # Per image: pop N particles with q, pop j with Cat(w), push the N - 1 others with q, push j
    # uniform over N, push x with p(x|z_j), push z_j with p(z). The q terms of the others cancel.
    n = 4
    model = TinyModel(latent_dim=4, num_pixels=64, seed=0)
    config = CoderConfig(coder="ISBitsBackCoder", num_particles=n, lanes=lanes, seed=4)
    coder = make_coder(model, config)
    msg = coder.encode(images, threads=1)  # one thread: the model's calls in step order
    # per step the model sees the b*N particles (weights), then the b chosen ones (coding x)
    ideal = 0.0
    m = 1 << config.mprec
    uniform_freq = [(((j + 1) << config.mprec) // n) - ((j << config.mprec) // n) for j in range(n)]
    posterior_calls, pixel_calls = list(model.posterior_calls), list(model.pixel_calls)
    assert len(pixel_calls) == 2 * len(posterior_calls)
    for step, (step_images, ids) in enumerate(posterior_calls):
        b = len(ids)
        particles = pixel_calls[2 * step].reshape(b, n, -1)
        chosen = pixel_calls[2 * step + 1]
        assert len({p.tobytes() for p in particles.reshape(b * n, -1)}) == b * n  # j is well defined
        j = np.array([np.flatnonzero((particles[i] == chosen[i]).all(axis=1))[0] for i in range(b)])
        q = _posterior_table(model, step_images, ids, config)
        cat = np.diff(coder.index_table(step_images, q, particles)[:, 0], axis=-1)
        log2_qj = _table_log2prob(q, chosen[:, None, :], config)[:, 0]
        log2_px = _pixel_log2prob(model, chosen, step_images, config)
        for i in range(b):
            ideal += (-log2_px[i] + config.log_num_bucket * model.latent_dim + log2_qj[i]
                      + math.log2(cat[i, j[i]] / m) - math.log2(uniform_freq[j[i]] / m))
        # the weights are the quantized ratios P(x|z_k) P(z_k) / Q(z_k|x), computed here from the
        # model and the tables; P(z_k) is the same for every particle, so compare up to a constant
        log2_pxk = _pixel_log2prob(model, particles.reshape(b * n, -1), np.repeat(step_images, n, axis=0),
                                   config).reshape(b, n)
        log2_qk = _table_log2prob(q, particles, config)
        weights = coder.log2_weights(step_images, q, particles)
        diff = (weights / 2.0**32 if config.arithmetic == "exact" else weights) - (log2_pxk - log2_qk)
        np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-9)
    q_symbols = images.shape[0] * (2 * n - 1) * model.latent_dim
    bound = _bound(config, images.shape[0], 4, 64, q_symbols)
    bound += 2 * rans_rounding_bound(images.shape[0], 1, config.lprec, config.mprec)
    assert abs(msg.net_bits - ideal) <= bound


# ---------------------------------------------------------------------------------------------
# Configuration: names and validation


@pytest.mark.parametrize(
    "spelling,expected",
    [
        ("StochasticCoder", "StochasticCoder"),
        ("stochastic", "StochasticCoder"),
        ("BitsBackCoder", "BitsBackCoder"),
        ("BB-ELBO", "BitsBackCoder"),
        ("bb_elbo", "BitsBackCoder"),
        ("ISBitsBackCoder", "ISBitsBackCoder"),
        ("BB-IS", "ISBitsBackCoder"),
        ("bbis", "ISBitsBackCoder"),
        ("CISBitsBackCoder", "CISBitsBackCoder"),
        ("BB-CIS", "CISBitsBackCoder"),
        (" bb-cis ", "CISBitsBackCoder"),
    ],
)
def test_accepted_coder_spellings(model, spelling, expected):
    assert canonical_coder_name(spelling) == expected
    config = CoderConfig(coder=spelling, num_particles=2 if "IS" in expected else 1).validated()
    assert config.coder == expected
    classes = {"StochasticCoder": StochasticCoder, "BitsBackCoder": BitsBackCoder,
               "ISBitsBackCoder": ISBitsBackCoder, "CISBitsBackCoder": CISBitsBackCoder}
    assert type(make_coder(model, config)) is classes[expected]
    assert set(CODER_NAMES) == set(classes)


@pytest.mark.parametrize(
    "overrides,parameter",
    [
        (dict(coder="NoSuchCoder"), "coder"),
        (dict(coder=""), "coder"),
        (dict(coder="ISBitsBackCoder", num_particles=0), "num_particles"),
        (dict(coder="CISBitsBackCoder", num_particles=-3), "num_particles"),
        (dict(coder="BitsBackCoder", num_particles=2), "num_particles"),
        (dict(coder="StochasticCoder", num_particles=5), "num_particles"),
        (dict(num_particles=1.5), "num_particles"),
        (dict(num_particles=True), "num_particles"),
        (dict(bprec=12), "bprec"),
        (dict(lprec=40, bprec=32), "lprec"),
        (dict(prop_mprec=8), "prop_mprec"),  # must exceed log_num_bucket=8
        (dict(log_num_bucket=10, prior_mprec=10, prop_mprec=10), "prop_mprec"),
        (dict(prop_mprec=33), "prop_mprec"),  # above lprec
        (dict(prior_mprec=7), "prior_mprec"),  # below log_num_bucket=8
        (dict(cond_mprec=0), "cond_mprec"),
        (dict(cond_mprec=40), "cond_mprec"),
        (dict(coder="ISBitsBackCoder", num_particles=50, mprec=5), "mprec"),  # 50 > 2^5
        (dict(coder="CISBitsBackCoder", num_particles=3, mprec=1), "mprec"),
        (dict(log_num_bucket=0), "log_num_bucket"),
        (dict(log_num_bucket=17), "log_num_bucket"),
        (dict(lanes=0), "lanes"),
        (dict(seed="0"), "seed"),
        (dict(whiten_prior="yes"), "whiten_prior"),
    ],
)
def test_invalid_configurations_name_the_parameter(model, overrides, parameter):
    with pytest.raises(McbitsError) as err:
        CoderConfig(**overrides).validated()
    assert err.value.where == f"parameter {parameter}", str(err.value)
    with pytest.raises(McbitsError):
        make_coder(model, CoderConfig(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(coder="ISBitsBackCoder", num_particles=50, mprec=6),  # 50 <= 2^6
        dict(coder="CISBitsBackCoder", num_particles=2, mprec=1),
        dict(prop_mprec=9, prior_mprec=8),
        dict(lprec=32, prop_mprec=32, cond_mprec=32, prior_mprec=32, mprec=32),
    ],
)
def test_boundary_configurations_are_accepted(overrides):
    assert CoderConfig(**overrides).validated() is not None


def test_config_round_trips_through_a_dict_and_refuses_unknown_keys():
    config = CoderConfig(coder="bb-cis", num_particles=7, lanes=2, seed=5, whiten_prior=False)
    values = config.validated().to_dict()
    assert values["coder"] == "CISBitsBackCoder"
    assert CoderConfig.from_dict(values) == config.validated()
    with pytest.raises(McbitsError) as err:
        CoderConfig.from_dict({**values, "particles": 3})
    assert "particles" in str(err.value)
    with pytest.raises(McbitsError):
        CoderConfig.from_dict({**values, "num_particles": 0})


_CIS_WIDE_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from mcbits.coding import distributions as dist
    from mcbits.coding.coders import make_coder
    from mcbits.coding.config import CoderConfig
    from mcbits.errors import McbitsError

    class Confident:
        # a posterior narrow enough to put almost all of 2^32 units into one bucket
        latent_dim, num_pixels = 3, 16
        def posterior(self, x, ids):
            centre = dist.bucket_centres(8)[128]
            return np.full((len(x), 3), centre), np.full((len(x), 3), 1e-4)
        def pixel_probs(self, z, log_num_bucket):
            return np.full((len(z), 16), 0.3)

    x = (np.random.default_rng(0).random((5, 16)) < 0.3).astype(np.uint8)
    try:
        make_coder(Confident(), CoderConfig(coder="CISBitsBackCoder", num_particles=2, prop_mprec=32,
                                            arithmetic="float"))
    except McbitsError:
        print("32 refused")
    # 31 is the largest prop_mprec validation accepts for BB-CIS: it must code exactly
    coder = make_coder(Confident(), CoderConfig(coder="CISBitsBackCoder", num_particles=2,
                                                prop_mprec=31, arithmetic="float"))
    msg = coder.encode(x)
    coded = msg.net_bits > 0
    ok = coded and np.array_equal(coder.decode(msg, 5), x) and msg.is_initial
    print("31 ok" if ok else "31 wrong")
    """
)


def test_cis_codes_exactly_at_the_largest_accepted_prop_mprec():
    # Run in a child process: a failure could corrupt memory and take pytest down with it.
    result = subprocess.run([sys.executable, "-c", _CIS_WIDE_SCRIPT], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["32", "refused", "31", "ok"], result.stdout


# ---------------------------------------------------------------------------------------------
# The torch adapter


def test_torch_model_round_trip_with_one_coding_thread_and_no_grad():
    import torch

    from mcbits.vae.adapter import TorchCodingModel

    class Spy(torch.nn.Module):
        """Records the thread count and grad mode the coder's network calls run under."""

        def __init__(self, vae):
            super().__init__()
            self.vae = vae
            self.seen: list[tuple[int, bool]] = []

        def encode(self, x):
            self.seen.append((torch.get_num_threads(), torch.is_grad_enabled()))
            return self.vae.encode(x)

        def decode(self, z):
            self.seen.append((torch.get_num_threads(), torch.is_grad_enabled()))
            return self.vae.decode(z)

    spy = Spy(tiny_vae(latent_dim=6, hidden_dim=12, seed=1))
    adapter = TorchCodingModel(spy, latent_dim=6)
    x = (np.random.default_rng(2).random((5, 784)) < 0.2).astype(np.uint8)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        coder = make_coder(adapter, CoderConfig(coder="ISBitsBackCoder", num_particles=3, lanes=2,
                                                arithmetic="float"))
        msg, _, _ = round_trip(coder, x)
        assert msg.is_initial
        assert torch.get_num_threads() == 2  # restored after every call
    finally:
        torch.set_num_threads(previous)
    assert spy.seen and set(spy.seen) == {(1, False)}


# ---------------------------------------------------------------------------------------------
# The published checkpoints (need the artifact mirror)


def _binarized_test_images(mirror: Path, count: int, seed: int) -> np.ndarray:
    """`count` EMNIST mnist-split test images, upright, binarized with a seeded generator."""
    raw = gzip.decompress((mirror / "emnist" / "emnist-mnist-test-images-idx3-ubyte.gz").read_bytes())
    grays = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    grays = grays.transpose(0, 2, 1)  # NIST stores the images transposed
    rng = np.random.default_rng(seed)
    chosen = grays[rng.choice(grays.shape[0], size=count, replace=False)].reshape(count, 784)
    return (rng.random(chosen.shape) < chosen / 255.0).astype(np.uint8)


@pytest.mark.mirror
@pytest.mark.parametrize(
    "coder_name,num,checkpoint_num",
    [("BitsBackCoder", 1, 1), ("ISBitsBackCoder", 5, 5), ("CISBitsBackCoder", 50, 50)],
    ids=["BB-ELBO", "BB-IS-5", "BB-CIS-50"],
)
def test_published_checkpoints_decode_exactly(real_mirror, coder_name, num, checkpoint_num):
    from mcbits.vae.adapter import coding_model
    from mcbits.vae.models import load_model

    x = _binarized_test_images(real_mirror, 30, seed=0)
    checkpoint = (real_mirror / "mcbits-checkpoints" / f"train_bin_emnist_split=mnist_num={checkpoint_num}"
                  / "model.pt")
    vae = load_model(checkpoint)
    coder = make_coder(coding_model(vae, "exact"), CoderConfig(coder=coder_name, num_particles=num))
    msg, net, total = round_trip(coder, x)
    assert msg.is_initial
    # 30 images are too few to order the coders' rates; only a sane range is checked
    assert 0.15 < net / x.size < 0.35
    assert total / x.size < 0.5


@pytest.mark.parametrize("coder,num", [("StochasticCoder", 1), ("BitsBackCoder", 1), ("ISBitsBackCoder", 3),
                                       ("CISBitsBackCoder", 3)])
def test_lane_groups_in_threads_give_the_same_bits(model, images, coder, num):
    # exact arithmetic: batch composition cannot change a number, so lanes may be split over threads
    c = make_coder(model, CoderConfig(coder=coder, num_particles=num, lanes=5, seed=2))
    assert len(c.lane_groups(3)) == 3 and len(c.lane_groups(99)) == 5
    reference = c.encode(images, threads=1).to_bytes()
    for threads in (2, 3, 5):
        msg = c.encode(images, threads=threads)
        assert msg.to_bytes() == reference
        for decode_threads in (1, 4):
            again = msg.copy()
            np.testing.assert_array_equal(c.decode(again, images.shape[0], threads=decode_threads), images)
            assert again.is_initial


def test_float_arithmetic_never_splits_lanes():
    float_model = TinyModel(latent_dim=4, num_pixels=64, seed=0, arithmetic="float")
    c = make_coder(float_model, CoderConfig(lanes=4, arithmetic="float"))
    assert len(c.lane_groups(4)) == 1


@pytest.mark.parametrize(
    ("spec", "num"),
    [(spec, n) for spec in CODER_SPECS for n in (1, 3) if spec.accepts_particles(n)],
    ids=lambda value: getattr(value, "short", str(value)),
)
def test_each_coders_step_pops_what_its_registry_row_declares(model, spec, num):
    # the registry's count bounds the words a decoder may draw (limits); the step program is what
    # runs, so the two must agree
    coder = make_coder(model, CoderConfig(coder=spec.name, num_particles=num))
    assert coder.pops_per_image() == spec.pops_per_step(num, model.latent_dim)
