"""Variational bounds: definitions, their relations, seeding, and the published models' figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mcbits.data import datasets, idx, registry
from mcbits.vae import bounds
from mcbits.vae.models import BinaryVAE, load_model


@pytest.fixture(scope="module")
def model() -> BinaryVAE:
    torch.manual_seed(0)
    m = BinaryVAE(latent_dim=10, hidden_dim=32).double().eval().requires_grad_(False)
    # An untrained model has nearly no posterior/prior mismatch; widen the posterior's spread of
    # log-weights so that the bounds differ measurably.
    with torch.no_grad():
        m.enc_fc31.weight.mul_(8.0)
    return m


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(64, 784, generator=g, dtype=torch.float64) < 0.25).double()


def test_bpd_conversion():
    assert bounds.nats_to_bpd(784 * math.log(2.0)) == pytest.approx(1.0)


def test_log_densities_match_references():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 784, generator=g) < 0.5).double()
    logits = torch.randn(3, 784, generator=g, dtype=torch.float64) * 30  # saturating logits
    ref = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    assert torch.allclose(bounds.log_bernoulli(x, logits), ref)
    z = torch.randn(4, 6, generator=g, dtype=torch.float64)
    mean, log_std = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    normal = torch.distributions.Normal(mean, log_std.exp())
    assert torch.allclose(bounds.log_normal(z, mean, log_std), normal.log_prob(z).sum(-1))
    std = torch.distributions.Normal(0.0, 1.0)
    assert torch.allclose(bounds.log_standard_normal(z), std.log_prob(z).sum(-1).double())


def test_iwae_1_equals_elbo(model, images):
    # Same seed, same noise: IWAE with one particle is the ELBO, to the last bit.
    a = bounds.iwae(model, images, 1, torch.Generator().manual_seed(5))
    b = bounds.elbo(model, images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    # And it is E_q[log p(x,z) - log q(z|x)] computed term by term.
    eps = torch.randn((1, 64, 10), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mean, log_std = model.encode_log_std(images)
    z = mean + log_std.exp() * eps[0]
    manual = (
        bounds.log_bernoulli(images, model.decode_logits(z))
        + bounds.log_standard_normal(z)
        - bounds.log_normal(z, mean, log_std)
    )
    assert torch.allclose(a, manual)


def test_iwae_rises_with_particles_on_average(model, images):
    means = {}
    for n in (1, 5, 50):
        g = torch.Generator().manual_seed(100 + n)
        reps = torch.stack([bounds.iwae(model, images, n, g) for _ in range(4)])
        means[n] = float(reps.mean())
    assert means[1] < means[5] < means[50], means
    # The gain is not a rounding effect: at least a tenth of a nat per image from 1 to 50.
    assert means[50] - means[1] > 0.1, means


def test_iwae_is_a_logmeanexp_of_weights(model, images):
    g = torch.Generator().manual_seed(3)
    eps = torch.randn((7, 64, 10), generator=g, dtype=torch.float64)
    log_w, log_joint = bounds.log_weights_from_noise(model, images, eps)
    assert log_w.shape == log_joint.shape == (7, 64)
    expected = torch.log(torch.exp(log_w).mean(0))
    assert torch.allclose(bounds.iwae_from_noise(model, images, eps), expected)


def test_neg_joint_exceeds_neg_elbo_on_average(model, images):
    # E_q[-log p(x,z)] = -ELBO + H[q]; with these (narrow) posteriors the entropy is negative,
    # so check the identity itself rather than an order: joint - elbo == log q on the same noise.
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    nj = bounds.neg_joint(model, images, g1)
    ne = -bounds.elbo(model, images, g2)
    eps = torch.randn((1, 64, 10), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    _, log_std = model.encode_log_std(images)
    log_q = (-0.5 * (eps[0] ** 2 + math.log(2 * math.pi)) - log_std).sum(-1)
    assert torch.allclose(nj - ne, -log_q)


def test_cis_shifts():
    s = bounds.cis_shifts(6, 4, seed=11)
    assert s.shape == (6, 4) and s.dtype == np.float64
    assert np.all(s[0] == 0.0)
    assert np.all((s >= 0.0) & (s < 1.0))
    assert np.array_equal(s, bounds.cis_shifts(6, 4, seed=11))
    assert not np.array_equal(s, bounds.cis_shifts(6, 4, seed=12))
    # Exact multiples of 2**-53: scaling to an integer grid loses nothing.
    assert np.array_equal(np.floor(s * 2.0**53), s * 2.0**53)
    assert bounds.cis_shifts(1, 4, seed=0).tolist() == [[0.0] * 4]
    with pytest.raises(ValueError):
        bounds.cis_shifts(0, 4, seed=0)


def test_coupled_noise_marginals_are_standard_normal():
    u = torch.rand((20000, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shifts = torch.as_tensor(bounds.cis_shifts(4, 3, seed=1))
    eps = bounds.coupled_noise(u, shifts)
    assert eps.shape == (4, 20000, 3)
    assert bool(torch.isfinite(eps).all())
    assert torch.allclose(eps[0], torch.special.ndtri(u))  # shift_1 = 0
    for k in range(4):
        assert abs(float(eps[k].mean())) < 0.03
        assert abs(float(eps[k].std()) - 1.0) < 0.03
    # Particles are coupled, not independent: each is a deterministic function of u.
    assert torch.equal(eps, bounds.coupled_noise(u, shifts))
    # u + shift == 1 exactly wraps to 0: still finite.
    edge = bounds.coupled_noise(torch.tensor([[0.75]], dtype=torch.float64), torch.tensor([[0.0], [0.25]]))
    assert bool(torch.isfinite(edge).all())


def test_coupled_iwae_relations(model, images):
    shifts = bounds.cis_shifts(5, 10, seed=2)
    a = bounds.coupled_iwae(model, images, shifts, torch.Generator().manual_seed(4))
    b = bounds.coupled_iwae(model, images, shifts, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and a.shape == (64,)
    # N = 1: the ELBO with inverse-CDF noise from the same uniform.
    u = torch.rand((64, 10), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    one = bounds.coupled_iwae(model, images, shifts[:1], torch.Generator().manual_seed(4))
    ref = bounds.iwae_from_noise(model, images, torch.special.ndtri(u).unsqueeze(0))
    assert torch.allclose(one, ref)
    # Still a bound that improves on the ELBO on average.
    g = torch.Generator().manual_seed(8)
    coupled = torch.stack([bounds.coupled_iwae(model, images, shifts, g) for _ in range(4)]).mean()
    elbo = torch.stack([bounds.elbo(model, images, g) for _ in range(4)]).mean()
    assert float(coupled) > float(elbo)
    with pytest.raises(ValueError, match="shifts"):
        bounds.coupled_iwae(model, images, np.zeros((5, 3)))


def test_evaluate_bounds_is_seeded_and_complete():
    torch.manual_seed(0)
    m = BinaryVAE(latent_dim=6, hidden_dim=16)
    x = (np.random.default_rng(0).random((30, 784)) < 0.3).astype(np.uint8)
    r1 = bounds.evaluate_bounds(m, x, [5, 1], seed=3, batch_size=7)
    r2 = bounds.evaluate_bounds(m, x, [1, 5], seed=3, batch_size=7)
    assert r1 == r2
    assert set(r1["bounds"]) == {
        "neg_elbo",
        "neg_joint",
        "neg_iwae_1",
        "neg_iwae_5",
        "neg_coupled_iwae_1",
        "neg_coupled_iwae_5",
    }
    b = r1["bounds"]["neg_iwae_5"]
    assert b["samples"] == 150 and b["num_particles"] == 5
    assert b["bits_per_dim"] == pytest.approx(b["nats"] / (784 * math.log(2)))
    assert r1["num_images"] == 30 and r1["dtype"] == "float64"
    r3 = bounds.evaluate_bounds(m, x, [1, 5], seed=4, batch_size=7)
    assert r3["bounds"]["neg_elbo"]["nats"] != r1["bounds"]["neg_elbo"]["nats"]
    # Adding a particle count leaves the other figures as they were (one stream per quantity).
    r4 = bounds.evaluate_bounds(m, x, [1, 5, 2], seed=3, batch_size=7)
    assert r4["bounds"]["neg_iwae_5"] == r1["bounds"]["neg_iwae_5"]
    assert r4["bounds"]["neg_elbo"] == r1["bounds"]["neg_elbo"]


# ---------------------------------------------------------------------------------------------
# Validation against the published checkpoints (needs the artifact mirror)


def _emnist_mnist_sample(mirror, n: int = 500, upright: bool = True) -> np.ndarray:
    images = idx.read_images(mirror / "emnist" / "emnist-mnist-test-images-idx3-ubyte.gz")
    order = np.random.default_rng(2021).permutation(len(images))[:n]
    chosen = images[order]
    if upright:
        chosen = chosen.transpose(0, 2, 1)  # NIST stores EMNIST transposed
    return datasets.binarize(np.ascontiguousarray(chosen).reshape(n, 784), seed=7)


def _published(mirror, split: str, n: int) -> BinaryVAE:
    folder = registry.checkpoint_folder(split, n)
    return load_model(mirror / "mcbits-checkpoints" / folder / "model.pt")


@pytest.mark.mirror
def test_published_models_reproduce_reference_figures(real_mirror):
    x = _emnist_mnist_sample(real_mirror)

    def bpd(split: str, n: int, counts: list[int], images=x) -> dict[str, float]:
        r = bounds.evaluate_bounds(_published(real_mirror, split, n), images, counts, seed=0)
        return {k: v["bits_per_dim"] for k, v in r["bounds"].items()}

    mnist1 = bpd("mnist", 1, [1])
    assert mnist1["neg_elbo"] == pytest.approx(0.235, abs=0.004), mnist1
    mnist50 = bpd("mnist", 50, [50])
    assert mnist50["neg_iwae_50"] == pytest.approx(0.227, abs=0.004), mnist50
    assert mnist50["neg_iwae_50"] < mnist50["neg_elbo"]
    letters1 = bpd("letters", 1, [1])
    assert letters1["neg_elbo"] == pytest.approx(0.256, abs=0.004), letters1
    # Wrongly oriented (not transposed) images are far worse for the mnist model.
    wrong = bpd("mnist", 1, [1], images=_emnist_mnist_sample(real_mirror, upright=False))
    assert wrong["neg_elbo"] > 0.29, wrong
