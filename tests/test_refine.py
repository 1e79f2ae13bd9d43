"""Exact iterative inference: bit-identical refinement whatever the batching or GEMM order; it
improves the bound like torch's float refinement; coders round trip with it."""

from __future__ import annotations

import numpy as np
import pytest
from coding_doubles import random_binary_images, tiny_vae

from mcbits.coding import limits, network, refine
from mcbits.coding.coders import make_coder
from mcbits.coding.config import CoderConfig
from mcbits.coding.limits import IterativeSettings
from mcbits.errors import McbitsError


@pytest.fixture(scope="module")
def vae():
    return tiny_vae(latent_dim=6, hidden_dim=24, seed=3)


@pytest.fixture(scope="module")
def base(vae):
    from mcbits.vae.adapter import exact_coding_model

    return exact_coding_model(vae)


def _reversed_blocked_matmul(a, b):
    out = np.zeros((a.shape[0], b.shape[1]))
    for start in reversed(range(0, a.shape[1], 5)):
        out += a[:, start:start + 5] @ b[start:start + 5]
    return out


def test_noise_table_is_standard_normal_quantiles():
    table = refine.noise_table() / 4096
    assert table.shape == (65536,) and (np.diff(table) >= 0).all()
    assert abs(table.mean()) < 1e-3 and abs(table.std() - 1) < 2e-3


def test_refinement_is_independent_of_batching_and_gemm_order(base, vae):
    images = random_binary_images(5, seed=2)
    refiner = refine.ExactIterativePosterior(
        base, IterativeSettings(steps=6, lr=0.05, num_particles=3, seed=4))
    together = refiner.posterior_fixed(images, np.arange(5))
    for i in range(5):
        alone = refiner.posterior_fixed(images[i:i + 1], np.array([i]))
        assert np.array_equal(alone[0][0], together[0][i]) and np.array_equal(alone[1][0], together[1][i])
    from mcbits.vae.adapter import module_state

    other = network.ExactCodingModel(
        network.FixedPointVAE(module_state(vae), matmul=_reversed_blocked_matmul))
    again = refine.ExactIterativePosterior(
        other, IterativeSettings(steps=6, lr=0.05, num_particles=3, seed=4))
    assert all(np.array_equal(a, b) for a, b in zip(together, again.posterior_fixed(images, np.arange(5)),
                                                    strict=True))
    start = base.network.posterior_fixed(images)
    assert not np.array_equal(start[0], together[0])  # the steps moved the posterior


@pytest.mark.parametrize("num_particles", [1, 4])
def test_exact_refinement_tightens_the_bound_like_torch(vae, base, num_particles):
    import torch

    from mcbits.vae import bounds
    from mcbits.vae.iterative import refine_posterior, step_noise

    images = (tiny_vae(latent_dim=6, hidden_dim=24, seed=3).decode(torch.randn(40, 6)).detach().numpy()
              > np.random.default_rng(0).random((40, 784))).astype(np.uint8)
    ids = np.arange(40)
    x = torch.from_numpy(images.astype(np.float32))

    def neg_bound(mean, log_std):
        g = torch.Generator().manual_seed(0)
        eps = torch.randn((64, 40, 6), generator=g, dtype=torch.float64)
        with torch.no_grad():
            vd = vae.double()
            z = mean + torch.exp(log_std) * eps
            lw = (bounds.log_bernoulli(x.double(), vd.decode_logits(z)) + bounds.log_standard_normal(z)
                  - (-0.5 * (eps * eps + bounds.LOG_2PI) - log_std).sum(-1))
            vae.float()
        return float(-lw.mean())

    m16, s16 = base.network.posterior_fixed(images)
    refiner = refine.ExactIterativePosterior(
        base, IterativeSettings(steps=30, lr=0.02, num_particles=num_particles, seed=1))
    r16 = refiner.posterior_fixed(images, ids)

    def as_float(v):
        return torch.from_numpy(v / 65536.0)

    before, after = neg_bound(as_float(m16), as_float(s16)), neg_bound(*map(as_float, r16))
    fm, fs = refine_posterior(vae, x, step_noise(1, ids, 30, num_particles, 6), 0.02)
    float_after = neg_bound(fm.double(), fs.double())
    assert after < before - 0.2  # nats per image
    assert abs((before - after) - (before - float_after)) < 0.25 * (before - float_after)


@pytest.mark.parametrize("coder,num", [("BitsBackCoder", 1), ("ISBitsBackCoder", 3), ("CISBitsBackCoder", 3)])
def test_coders_round_trip_with_exact_iterative_inference(base, coder, num):
    images = random_binary_images(6, seed=5)
    model = refine.ExactIterativePosterior(
        base, IterativeSettings(steps=4, lr=0.05, num_particles=num, seed=2))
    c = make_coder(model, CoderConfig(coder=coder, num_particles=num, lanes=3))
    msg = c.encode(images, threads=2)
    decoded = c.decode(msg, 6, threads=1)
    np.testing.assert_array_equal(decoded, images)
    assert msg.is_initial


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(lr=0.0), dict(lr=float("nan")), dict(lr=1.5),
                                 dict(num_particles=0), dict(num_particles=4097), dict(seed=-1),
                                 dict(seed=1 << 63), dict(steps=1.5), dict(steps=True),
                                 dict(steps=limits.MAX_ITERATIVE_STEPS + 1),
                                 dict(steps=limits.MAX_ITERATIVE_WORK // 8 + 1, num_particles=8)])
def test_bad_settings_are_refused_by_the_one_rule(bad):
    # IterativeSettings is the one check: what it refuses, a header refuses too (and vice versa),
    # so an encoder never writes iterative settings that its decoder would refuse
    settings = dict(steps=3, lr=0.01, num_particles=1, seed=0) | bad
    with pytest.raises(McbitsError, match="iterative") as err:
        IterativeSettings(**settings, where="parameters compress.iterative")
    assert err.value.where == "parameters compress.iterative"
    assert limits.iterative_problem(settings) == err.value.what


def test_settings_at_the_limits_are_accepted_and_round_trip_as_the_header_stores_them():
    top = IterativeSettings(steps=limits.MAX_ITERATIVE_WORK // 8, lr=1, num_particles=8, seed=(1 << 63) - 1)
    assert top.lr == 1.0 and isinstance(top.lr, float)  # the header stores lr as a float64
    assert IterativeSettings.from_dict(top.to_dict()) == top
    assert list(top.to_dict()) == ["steps", "lr", "num_particles", "seed"]
    with pytest.raises(McbitsError, match="keys"):
        IterativeSettings.from_dict({**top.to_dict(), "extra": 1})


def test_posteriors_store_their_settings_for_the_header(base):
    settings = IterativeSettings(steps=2, lr=0.05, num_particles=2, seed=1)
    model = refine.ExactIterativePosterior(base, settings)
    assert model.settings() == {"iterative": settings.to_dict()}


def test_the_encoder_refines_in_advance_and_writes_the_same_bits(base, monkeypatch):
    """The encoder refines all its images in one batch up front (prepared_posteriors); the message
    is byte-identical to refining lane step by lane step, and the decoder (which cannot) still
    decodes it."""
    images = random_binary_images(7, seed=8)
    config = CoderConfig(coder="ISBitsBackCoder", num_particles=3, lanes=2)
    calls = []

    def counting(model):
        original = model._refine
        monkeypatch.setattr(model, "_refine", lambda x, ids: calls.append(len(ids)) or original(x, ids))
        return model

    ahead = counting(refine.ExactIterativePosterior(
        base, IterativeSettings(steps=3, lr=0.05, num_particles=3, seed=6)))
    ahead_bytes = make_coder(ahead, config).encode(images, threads=1).to_bytes()
    assert calls == [7]  # one batch, then lookups only
    assert ahead._prepared.lookup(images, np.arange(7)) is None  # released after encoding

    calls.clear()
    stepwise = counting(refine.ExactIterativePosterior(
        base, IterativeSettings(steps=3, lr=0.05, num_particles=3, seed=6)))
    monkeypatch.setattr(stepwise, "prepared_posteriors", None)
    message = make_coder(stepwise, config).encode(images, threads=1)
    assert calls == [2, 2, 2, 1]  # one refinement per lane step
    assert message.to_bytes() == ahead_bytes

    decoder = refine.ExactIterativePosterior(
        base, IterativeSettings(steps=3, lr=0.05, num_particles=3, seed=6))
    np.testing.assert_array_equal(make_coder(decoder, config).decode(message, 7), images)
    assert message.is_initial


def test_prepared_posteriors_are_used_only_for_the_same_images(base):
    model = refine.ExactIterativePosterior(
        base, IterativeSettings(steps=2, lr=0.05, num_particles=2, seed=1))
    images = random_binary_images(4, seed=2)
    other = 1 - images[:2]
    fresh = refine.ExactIterativePosterior(
        base, IterativeSettings(steps=2, lr=0.05, num_particles=2, seed=1))
    with model.prepared_posteriors(images):
        for got, want in zip(model.posterior_fixed(other, np.arange(2)),
                             fresh.posterior_fixed(other, np.arange(2)), strict=True):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(model.posterior_fixed(images[2:], np.arange(2, 4)),
                             fresh.posterior_fixed(images[2:], np.arange(2, 4)), strict=True):
            np.testing.assert_array_equal(got, want)
