"""The importance-sampled -log p(x) against closed-form cases (mcbits.vae.nll)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mcbits.vae.bounds import nats_to_bpd
from mcbits.vae.models import BinaryVAE
from mcbits.vae.nll import estimate_nll


def _z_free_model(mean: float, std: float, latent_dim: int = 8) -> tuple[BinaryVAE, torch.Tensor]:
    """A model whose pixels ignore z (so p(x) is a product of Bernoullis, known exactly) and
    whose posterior is N(mean, std^2) for every image."""
    model = BinaryVAE(latent_dim=latent_dim, hidden_dim=16).double()
    bias = torch.linspace(-3.0, 2.0, 784, dtype=torch.float64)
    with torch.no_grad():
        model.dec_fc3.weight.zero_()
        model.dec_fc3.bias.copy_(bias)
        for layer, value in ((model.enc_fc31, mean), (model.enc_fc32, math.log(std))):
            layer.weight.zero_()
            layer.bias.fill_(value)
    return model, bias


def _exact_nll(images: np.ndarray, logits: torch.Tensor) -> np.ndarray:
    x = torch.as_tensor(images, dtype=torch.float64)
    return -torch.nn.functional.logsigmoid((2 * x - 1) * logits).sum(-1).numpy()


def _images(count: int = 30) -> np.ndarray:
    return (np.random.default_rng(0).random((count, 784)) < 0.3).astype(np.uint8)


def test_posterior_equal_to_the_prior_gives_the_exact_likelihood_for_any_k():
    model, logits = _z_free_model(mean=0.0, std=1.0)
    images = _images()
    for k in (1, 7, 600):
        est = estimate_nll(model, images, num_samples=k, seed=3, batch_size=7, sample_chunk=50)
        np.testing.assert_allclose(est.per_image_nats, _exact_nll(images, logits), rtol=0, atol=1e-9)


def test_a_mismatched_posterior_converges_to_the_likelihood_from_above():
    # q = N(0.5, 1.3^2) per dimension: -ELBO = -log p(x) + KL(q || p) exactly in expectation, and
    # the k-sample estimate approaches -log p(x) from above as k grows (IWAE_k is a lower bound).
    mean, std, dim = 0.5, 1.3, 8  # q wider than p: importance weights of finite variance
    model, logits = _z_free_model(mean, std, dim)
    images = _images()
    exact = _exact_nll(images, logits)
    kl = dim * 0.5 * (std**2 + mean**2 - 1.0 - math.log(std**2))
    one = estimate_nll(model, images, num_samples=1, seed=1)
    gap_one = one.per_image_nats - exact
    # one sample per image: the gap is KL plus noise; its mean over 30 images is KL within 4 s.e.
    assert abs(gap_one.mean() - kl) < 4 * gap_one.std(ddof=1) / math.sqrt(gap_one.size)
    fifty = estimate_nll(model, images, num_samples=50, seed=1).per_image_nats - exact
    big = estimate_nll(model, images, num_samples=5000, seed=1)
    gap_big = big.per_image_nats - exact
    assert 0 < fifty.mean() < gap_one.mean()  # more samples, a tighter bound
    assert abs(gap_big.mean()) < 0.02 * kl  # 5,000 samples close nearly all of the KL gap
    assert big.nats == pytest.approx(float(exact.mean()), abs=0.05)


def test_summary_figures_are_consistent_and_the_seed_fixes_the_estimate():
    model, _ = _z_free_model(0.3, 0.9)
    images = _images(12)
    a = estimate_nll(model, images, num_samples=40, seed=5, sample_chunk=16)
    b = estimate_nll(model, images, num_samples=40, seed=5, sample_chunk=16)
    c = estimate_nll(model, images, num_samples=40, seed=6, sample_chunk=16)
    assert np.array_equal(a.per_image_nats, b.per_image_nats)
    assert not np.array_equal(a.per_image_nats, c.per_image_nats)
    s = a.summary()
    assert s["num_images"] == 12 and s["num_samples"] == 40 and s["seed"] == 5
    assert s["bits_per_dim"] == pytest.approx(nats_to_bpd(s["nats"]))
    assert s["std_error_nats"] == pytest.approx(a.per_image_nats.std(ddof=1) / math.sqrt(12))


def test_bad_arguments_are_refused():
    model, _ = _z_free_model(0.0, 1.0)
    with pytest.raises(ValueError, match="num_samples"):
        estimate_nll(model, _images(2), num_samples=0)
    with pytest.raises(ValueError, match="no images"):
        estimate_nll(model, np.zeros((0, 784), np.uint8))
