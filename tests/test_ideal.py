"""mcbits.vae.ideal against independent estimates: with a one-dimensional latent every bound is an
integral over one or two variables, computed here by quadrature or by enumerating the buckets
(numpy, float64), with no sampling. The ideal rate is a Monte Carlo mean that reports its own
standard error, so it must agree within a few of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from coding_doubles import random_binary_images, tiny_vae

from mcbits.coding import distributions as dist
from mcbits.coding.config import CoderConfig
from mcbits.coding.registry import CODER_SPECS
from mcbits.coding.shifts import cis_shifts

torch = pytest.importorskip("torch")
from mcbits.vae.ideal import BOUND_ESTIMATES, ideal_rate_with_error  # noqa: E402

NODES = 120  # Gauss-Hermite nodes: far more than the smooth 1-D integrands need
SIGMAS = 4.0  # agreement within this many of the estimate's standard errors


@pytest.fixture(scope="module")
def setting():
    vae = tiny_vae(latent_dim=1, hidden_dim=8, seed=4).double()
    images = random_binary_images(48, seed=6, density=0.15)
    x = torch.from_numpy(images.astype(np.float64))
    with torch.no_grad():
        mean, log_std = vae.encode_log_std(x)
    return vae.float(), images, mean[:, 0].numpy(), np.exp(log_std[:, 0].numpy())


def _log_px(vae, images: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x_b | z_bi) for latents z (B, M): (B, M), in float64."""
    work = vae.double()
    try:
        with torch.no_grad():
            logits = work.decode_logits(torch.from_numpy(z[..., None])).numpy()  # (B, M, P)
    finally:
        vae.float()
    signs = 2.0 * images[:, None, :].astype(np.float64) - 1.0
    return -np.logaddexp(0.0, -signs * logits).sum(-1)


def _log_w(vae, images, mean, std, z):
    """log p(x, z) - log q(z|x) at latents z (B, M)."""
    log_prior = -0.5 * (z * z + math.log(2 * math.pi))
    log_q = -0.5 * (((z - mean[:, None]) / std[:, None]) ** 2 + math.log(2 * math.pi)) - np.log(std)[:, None]
    return _log_px(vae, images, z) + log_prior - log_q


def _bpd(nats: np.ndarray) -> float:
    return float(np.mean(nats) / (784 * math.log(2.0)))


def _gauss_hermite(mean, std):
    """Nodes z (B, M) and weights (M,) of E_{N(mean, std^2)}[f] ~ sum_i w_i f(z_i)."""
    t, w = np.polynomial.hermite.hermgauss(NODES)
    return mean[:, None] + math.sqrt(2.0) * std[:, None] * t[None, :], w / math.sqrt(math.pi)


def exact_neg_elbo(vae, images, mean, std) -> float:
    z, w = _gauss_hermite(mean, std)
    expected_log_px = _log_px(vae, images, z) @ w
    kl = 0.5 * (std**2 + mean**2 - 1.0) - np.log(std)
    return _bpd(kl - expected_log_px)


def exact_neg_iwae_2(vae, images, mean, std) -> float:
    # E over two independent particles: a Gauss-Hermite grid over both
    z, w = _gauss_hermite(mean, std)
    log_w = _log_w(vae, images, mean, std, z)  # (B, M)
    pair = np.logaddexp(log_w[:, :, None], log_w[:, None, :]) - math.log(2.0)
    return _bpd(-np.einsum("bij,i,j->b", pair, w, w))


def exact_neg_log_px(vae, images, mean, std) -> float:
    z, w = _gauss_hermite(mean, std)
    log_w = _log_w(vae, images, mean, std, z)
    return _bpd(-(np.log(w)[None, :] + log_w).max(1) - np.log(np.exp(np.log(w)[None, :] + log_w - (
        np.log(w)[None, :] + log_w).max(1, keepdims=True)).sum(1)))


def exact_neg_coupled_iwae_2(vae, images, mean, std, shift: float) -> float:
    # one uniform u, particles at u and (u + shift) mod 1 through q's inverse CDF: midpoint rule over u
    m = 4000
    u = (np.arange(m) + 0.5) / m
    quantile = np.vectorize(dist._STD_NORMAL.inv_cdf)
    eps = np.stack([quantile(u), quantile((u + shift) % 1.0)])  # (2, M)
    log_ws = [_log_w(vae, images, mean, std, mean[:, None] + std[:, None] * e[None, :]) for e in eps]
    return _bpd(-(np.logaddexp(*log_ws) - math.log(2.0)).mean(1))


def exact_neg_joint_discrete(vae, images, mean, std, log_num_bucket: int) -> float:
    # enumerate the buckets: Q(bucket k | x) from q's CDF, the decoder at each bucket's centre
    edges = np.concatenate([[-np.inf], dist.bucket_edges(log_num_bucket), [np.inf]])
    cdf = np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)))((edges[None, :] - mean[:, None])
                                                                       / std[:, None])
    mass = np.diff(cdf, axis=1)  # (B, K)
    centres = np.broadcast_to(dist.bucket_centres(log_num_bucket), mass.shape)
    nll = -(mass * _log_px(vae, images, np.ascontiguousarray(centres))).sum(1)
    return _bpd(nll + log_num_bucket * math.log(2.0))


def _ideal(vae, images, coder: str, n: int, **config):
    return ideal_rate_with_error(vae, images, CoderConfig(coder=coder, num_particles=n, **config),
                                 eval_seed=3, batch_size=16)


def test_every_coder_bound_has_an_estimate():
    assert {spec.bound for spec in CODER_SPECS} == set(BOUND_ESTIMATES)


@pytest.mark.parametrize("coder,n,name", [("BitsBackCoder", 1, "neg_elbo"),
                                          ("ISBitsBackCoder", 1, "neg_iwae_1"),
                                          ("CISBitsBackCoder", 1, "neg_coupled_iwae_1")])
def test_elbo_estimates_agree_with_quadrature(setting, coder, n, name):
    vae, images, mean, std = setting
    got, value, stderr = _ideal(vae, images, coder, n)
    want = exact_neg_elbo(vae, images, mean, std)
    assert got == name
    assert 0 < stderr < 0.01
    assert abs(value - want) <= SIGMAS * stderr, (value, want, stderr)


def test_iwae_2_agrees_with_quadrature_and_lies_between_the_elbo_and_the_likelihood(setting):
    vae, images, mean, std = setting
    name, value, stderr = _ideal(vae, images, "ISBitsBackCoder", 2)
    want = exact_neg_iwae_2(vae, images, mean, std)
    assert name == "neg_iwae_2"
    assert abs(value - want) <= SIGMAS * stderr, (value, want, stderr)
    assert exact_neg_log_px(vae, images, mean, std) < want < exact_neg_elbo(vae, images, mean, std)


def test_coupled_iwae_2_agrees_with_the_integral_over_its_one_uniform(setting):
    vae, images, mean, std = setting
    name, value, stderr = _ideal(vae, images, "CISBitsBackCoder", 2, seed=5)
    want = exact_neg_coupled_iwae_2(vae, images, mean, std, float(cis_shifts(2, 1, 5)[1, 0]))
    assert name == "neg_coupled_iwae_2"
    assert abs(value - want) <= SIGMAS * stderr, (value, want, stderr)


@pytest.mark.parametrize("log_num_bucket", [3, 8])
def test_stochastic_rate_agrees_with_enumerating_the_buckets(setting, log_num_bucket):
    vae, images, mean, std = setting
    name, value, stderr = _ideal(vae, images, "StochasticCoder", 1, log_num_bucket=log_num_bucket,
                                 prior_mprec=log_num_bucket, prop_mprec=max(16, log_num_bucket + 1))
    want = exact_neg_joint_discrete(vae, images, mean, std, log_num_bucket)
    assert name == "neg_joint_discrete"
    assert abs(value - want) <= SIGMAS * stderr, (value, want, stderr)
