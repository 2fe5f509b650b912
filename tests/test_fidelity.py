"""Fidelity metrics against closed forms, scipy references and a brute-force rule check."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats
from scipy.special import logsumexp

from compare.fidelity import (frechet_distance, log_likelihood, mondrian_valid_fraction, mondrian_validity,
                              sliced_wasserstein)
from memgen.data import gm_dummies, mondrian, random_ink
from toymodels import GMMDenoiser


def brute_valid(img, w, tol):
    """Loop over every bar position and check the four quadrants directly (float64)."""
    img = np.asarray(img, dtype=np.float64)
    _, H, W = img.shape
    if img.min() < -1 - tol or img.max() > 1 + tol:
        return False
    for r in range(1, H - w):
        for c in range(1, W - w):
            quads = [img[:, :r, :c], img[:, :r, c + w:], img[:, r + w:, :c], img[:, r + w:, c + w:]]
            if all((q.reshape(len(q), -1).max(1) - q.reshape(len(q), -1).min(1) <= tol).all() for q in quads):
                return True
    return False


@pytest.mark.parametrize("size,seed", [(4, 0), (8, 1), (16, 2), (32, 3), (33, 4), (48, 5)])
def test_validity_is_one_on_mondrians(size, seed):
    x = mondrian(64, size=size, seed=seed).x
    assert mondrian_valid_fraction(x, tol=0) == 1.0
    assert mondrian_validity(x).all()


def test_validity_is_low_on_random_ink_and_dummies():
    assert mondrian_valid_fraction(random_ink(200, seed=1).x) == 0.0
    assert mondrian_valid_fraction(gm_dummies(200, seed=1).x) == 0.0
    assert mondrian_valid_fraction(random_ink(200, size=8, seed=1).x) < 0.05


def test_validity_equals_brute_force_and_perturbations():
    rng = np.random.default_rng(0)
    size, w, tol = 9, 2, 0.01
    ds = mondrian(30, size=size, seed=7, bar_width=w)
    x = ds.x.numpy().copy()
    r = ds.truth["bar_row"].numpy()
    cases = []
    for i in range(30):
        img = x[i].copy()
        kind = i % 5
        if kind == 1:      # a quadrant pixel off by more than tol: invalid (the cross cannot absorb it)
            img[i % 3, size - 1, size - 1] += 0.5 if img[i % 3, size - 1, size - 1] < 0 else -0.5
        elif kind == 2:    # a cross pixel changed: still valid
            img[:, r[i], 0] = rng.uniform(-1, 1, 3)
        elif kind == 3:    # quadrant noise below tol: valid; kind 4: above tol: invalid
            img += rng.uniform(0, tol * 0.9, img.shape).astype(np.float32)
        elif kind == 4:
            img += rng.uniform(0, tol * 3, img.shape).astype(np.float32)
        cases.append(img)
    cases += [x[0] * 0 + 0.3, x[1] * 1.5, random_ink(5, size=size, seed=3).x.numpy()[0]]
    batch = np.stack(cases)
    got = mondrian_validity(batch, tol=tol, bar_width=w, batch_size=7)
    assert isinstance(got, np.ndarray) and got.dtype == bool                        # numpy in, numpy out
    ref = np.array([brute_valid(img, w, tol) for img in batch])
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(ref[:30], ~np.isin(np.arange(30) % 5, [1, 4]))
    assert ref[30] and not ref[31]                                   # constant image valid; out of range not


def test_log_likelihood_matches_scipy_mixture():
    rng = np.random.default_rng(0)
    d, K = 3, 3
    means = rng.standard_normal((K, d)) * 2
    covs = []
    for _ in range(K):
        m = rng.standard_normal((d, d))
        covs.append(m @ m.T + 0.5 * np.eye(d))
    weights = np.array([0.2, 0.5, 0.3])
    x = rng.standard_normal((50, d)) * 2
    ref = logsumexp([np.log(wk) + stats.multivariate_normal(mk, ck).logpdf(x)
                     for wk, mk, ck in zip(weights, means, covs)], axis=0)
    gmm = GMMDenoiser(weights, means, np.stack(covs), dtype=torch.float64)
    got = log_likelihood(torch.as_tensor(x), gmm, batch_size=16)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(log_likelihood(x, gmm), ref, rtol=1e-10, atol=1e-10)


def test_log_likelihood_takes_any_density_object():
    class StdNormal:
        def log_density(self, x):
            return -0.5 * (x ** 2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)

    x = torch.randn(10, 4, dtype=torch.float64)
    np.testing.assert_allclose(log_likelihood(x, StdNormal()).numpy(),
                               stats.multivariate_normal(np.zeros(4), np.eye(4)).logpdf(x.numpy()), rtol=1e-12)
    with pytest.raises(TypeError, match="density"):
        log_likelihood(x, object())

    class Wrong:
        def log_density(self, x):
            return torch.zeros(len(x), 2)

    with pytest.raises(ValueError, match="density"):
        log_likelihood(x, Wrong())


def test_sliced_wasserstein_in_1d_is_the_exact_wasserstein():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(37), rng.exponential(size=23) + 0.5
    # in 1-D every direction is +-1: SW_1 = W_1 exactly, for unequal sample sizes
    got = sliced_wasserstein(a[:, None], b[:, None], p=1, projections=5)
    assert got == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    # W_2 with m = 3 n: repeating each sorted value of a three times gives equal-size quantile matching
    b = rng.standard_normal(30) * 2 + 1
    ref = math.sqrt(np.mean((np.repeat(np.sort(a[:10]), 3) - np.sort(b)) ** 2))
    assert sliced_wasserstein(a[:10, None], b[:, None], projections=3) == pytest.approx(ref, rel=1e-12)


def test_sliced_wasserstein_of_a_shift_matches_the_closed_form():
    rng = np.random.default_rng(2)
    d = 12
    x = torch.as_tensor(rng.standard_normal((300, d)))
    mu = torch.as_tensor(rng.standard_normal(d))
    # b = a + mu: along theta the projections shift by theta . mu, so W_p = |theta . mu| exactly;
    # E (theta . mu)^2 = ||mu||^2 / d and E |theta . mu| = ||mu|| Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))
    # Monte Carlo over 3000 directions: relative standard errors about 1.1% (p=2) and 1.4% (p=1); 6% is > 4 sd
    sw2 = sliced_wasserstein(x, x + mu, projections=3000, seed=1)
    assert sw2 == pytest.approx(float(mu.norm()) / math.sqrt(d), rel=0.06)
    sw1 = sliced_wasserstein(x, x + mu, projections=3000, p=1, seed=1)
    ref1 = float(mu.norm()) * math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
    assert sw1 == pytest.approx(ref1, rel=0.06)
    # same seed same value; a generator is used as given; a feature map changes the space
    assert sliced_wasserstein(x, x + mu, seed=4) == sliced_wasserstein(x, x + mu, seed=4)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert sliced_wasserstein(x, x + mu, generator=g1) == sliced_wasserstein(x, x + mu, generator=g2)
    first = sliced_wasserstein(x, x + mu, features=lambda t: t[:, :1], projections=4, p=1)
    assert first == pytest.approx(abs(float(mu[0])), rel=1e-10)


def test_frechet_distance_against_scipy_sqrtm_and_closed_forms():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((80, 6))
    b = rng.standard_normal((60, 6)) @ rng.standard_normal((6, 6)) + 0.7
    ca, cb = np.cov(a.T), np.cov(b.T)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)
    # more dimensions than samples (rank-deficient covariances): float64 eigen-based reference
    a, b = rng.standard_normal((10, 25)), rng.standard_normal((14, 25)) * 2
    ca, cb = np.cov(a.T), np.cov(b.T)
    lam, q = np.linalg.eigh(ca)
    sa = (q * np.sqrt(np.clip(lam, 0, None))) @ q.T
    ev = np.linalg.eigvalsh(sa @ cb @ sa)
    tr = np.sqrt(ev[ev > 1e-10 * ev.max()]).sum()                  # rank <= 9: the rest is round-off
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr
    assert frechet_distance(torch.as_tensor(a), torch.as_tensor(b)) == pytest.approx(ref, rel=1e-9)
    # a pure shift: identical covariances, FD = ||mu||^2
    mu = rng.standard_normal(25)
    assert frechet_distance(a.reshape(10, 5, 5), (a + mu).reshape(10, 5, 5)) == pytest.approx((mu ** 2).sum(), rel=1e-9)


def test_frechet_distance_of_gaussians_from_samples():
    rng = np.random.default_rng(4)
    n, d = 20000, 4
    m1, m2 = np.zeros(d), np.array([1.0, -0.5, 0.0, 2.0])
    c1, c2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.25, 2.0, 2.0, 1.0])
    a = m1 + rng.standard_normal((n, d)) * np.sqrt(c1)
    b = m2 + rng.standard_normal((n, d)) * np.sqrt(c2)
    # closed form for diagonal covariances: ||m1 - m2||^2 + sum (sqrt(c1) - sqrt(c2))^2
    closed = ((m1 - m2) ** 2).sum() + ((np.sqrt(c1) - np.sqrt(c2)) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(closed, abs=0.05)
    # same distribution: the estimate is O(d / n) (here about 1e-3); stated tolerance 0.01
    assert frechet_distance(a, m1 + rng.standard_normal((n, d)) * np.sqrt(c1)) < 0.01
    # a feature map: FD of the first two coordinates
    sub = ((m1 - m2)[:2] ** 2).sum() + ((np.sqrt(c1) - np.sqrt(c2))[:2] ** 2).sum()
    assert frechet_distance(a, b, features=lambda t: t[:, :2]) == pytest.approx(sub, abs=0.05)


def test_bad_input_names_the_argument():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="images"):
        mondrian_validity(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="tol"):
        mondrian_validity(torch.zeros(2, 3, 8, 8), tol=-1)
    with pytest.raises(ValueError, match="bar_width"):
        mondrian_validity(torch.zeros(2, 3, 8, 8), bar_width=0)
    with pytest.raises(ValueError, match="images"):
        mondrian_validity(torch.zeros(2, 3, 8, 8), bar_width=7)
    with pytest.raises(ValueError, match="p:"):
        sliced_wasserstein(x, x, p=0.5)
    with pytest.raises(ValueError, match="projections"):
        sliced_wasserstein(x, x, projections=0)
    with pytest.raises(ValueError, match="b:"):
        sliced_wasserstein(x, torch.randn(10, 4))
    with pytest.raises(ValueError, match="a:"):
        frechet_distance(x[:1], x)
    with pytest.raises(ValueError, match="features"):
        frechet_distance(x, x, features=lambda t: t[:3])
    with pytest.raises(TypeError, match="features"):
        frechet_distance(x, x, features="inception")
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(x, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="samples"):
        log_likelihood(torch.randn(3), GMMDenoiser([1.0], torch.zeros(1, 3), [1.0]))


@pytest.mark.parametrize("seed", range(5))
def test_sliced_wasserstein_to_a_larger_reference_is_not_larger_on_average(seed):
    """Claim 12 compares distances to a small training set and a large held-out set. W_2^2 is jointly convex
    and an (m+1)-point empirical measure is the mean of its m-point leave-one-out measures, so with the same
    directions SW_2^2(s, R) <= mean_i SW_2^2(s, R without point i), exactly, for any samples s."""
    rng = np.random.default_rng(seed)
    s, ref = torch.as_tensor(rng.standard_normal((40, 5))), torch.as_tensor(rng.standard_normal((9, 5)) + 0.3)
    full = sliced_wasserstein(s, ref, seed=seed) ** 2
    leave_one_out = [sliced_wasserstein(s, torch.cat([ref[:i], ref[i + 1:]]), seed=seed) ** 2 for i in range(9)]
    assert full <= np.mean(leave_one_out) * (1 + 1e-12)
    assert full < max(leave_one_out)
