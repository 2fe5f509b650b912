"""Smoothed (error-prone), Gaussian and Gaussian-mixture denoisers against independent references."""
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from toymodels import EmpiricalDenoiser, GaussianDenoiser, GMMDenoiser, SmoothedDenoiser


def test_smoothed_delta_zero_is_empirical():
    y = torch.randn(30, 4, dtype=torch.float64)
    x = torch.randn(10, 4, dtype=torch.float64) * 2
    for sigma in [1e-3, 0.5, 20.0]:
        torch.testing.assert_close(SmoothedDenoiser(y, 0.0, dtype=torch.float64)(x, sigma),
                                   EmpiricalDenoiser(y, dtype=torch.float64)(x, sigma), rtol=0, atol=0)


@pytest.mark.parametrize("delta", [0.3, 1.6])
def test_smoothed_is_posterior_mean_of_broadened_data_1d(delta):
    """Quadrature: E[z | x] with z ~ (1/n) sum_i N(y_i, delta^2), x = z + sigma n."""
    y = np.array([-3.0, -1.0, 0.5, 2.0, 4.5])
    model = SmoothedDenoiser(torch.as_tensor(y)[:, None], delta, dtype=torch.float64)

    def prior(z):
        return stats.norm.pdf(z, y[:, None], delta).mean(0)

    for sigma in [0.05, 0.7, 3.0]:
        for x in [-2.0, 0.1, 3.3]:
            lik = lambda z: stats.norm.pdf(x, z, sigma)
            lo, hi = -15, 15
            pts = list(y)
            num = integrate.quad(lambda z: z * prior(np.atleast_1d(z))[0] * lik(z), lo, hi, points=pts, limit=400)[0]
            den = integrate.quad(lambda z: prior(np.atleast_1d(z))[0] * lik(z), lo, hi, points=pts, limit=400)[0]
            got = float(model(torch.tensor([[x]], dtype=torch.float64), sigma))
            assert abs(got - num / den) < 1e-7


def test_smoothed_posterior_is_empirical_at_broadened_sigma():
    y = torch.randn(15, 3, dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64)
    a = SmoothedDenoiser(y, 0.8, dtype=torch.float64).posterior(x, 0.6)
    b = EmpiricalDenoiser(y, dtype=torch.float64).posterior(x, 1.0)    # sqrt(0.6^2 + 0.8^2) = 1
    torch.testing.assert_close(a.weights, b.weights)


def test_gaussian_matches_direct_matrix_formula():
    rng = np.random.default_rng(0)
    d = 6
    a = rng.normal(size=(d, d))
    cov = a @ a.T / d + 0.1 * np.eye(d)
    mu = rng.normal(size=d)
    x = rng.normal(size=(5, d))
    model = GaussianDenoiser(mu, cov, dtype=torch.float64)
    for sigma in [0.01, 1.0, 30.0]:
        ref = mu + (x - mu) @ np.linalg.solve(cov + sigma ** 2 * np.eye(d), cov).T
        np.testing.assert_allclose(model(x, sigma), ref, atol=1e-10)
    # rank-r truncation: the exact denoiser of the projected covariance Q_r diag(l_r) Q_r^T
    lam, q = np.linalg.eigh(cov)
    lr, qr = lam[-2:], q[:, -2:]
    cov_r = (qr * lr) @ qr.T
    ref = mu + (x - mu) @ (cov_r @ np.linalg.inv(cov_r + 0.5 ** 2 * np.eye(d))).T
    np.testing.assert_allclose(GaussianDenoiser(mu, cov, rank=2, dtype=torch.float64)(x, 0.5), ref, atol=1e-10)


def test_gaussian_is_large_n_limit_of_empirical():
    """Empirical denoiser on n = 100k Gaussian samples vs the population Gaussian denoiser.

    At sigma = 1 in d = 2 the empirical posterior mean is a kernel estimate with relative
    Monte Carlo error ~ 1/sqrt(n_eff), n_eff ~ n * (sigma^2 / (1 + sigma^2)) ~ 5e4: ~1e-2 at most.
    """
    g = torch.Generator().manual_seed(0)
    lam = torch.tensor([2.0, 0.5], dtype=torch.float64)
    y = torch.randn(100_000, 2, generator=g, dtype=torch.float64) * lam.sqrt()
    x = torch.randn(50, 2, generator=g, dtype=torch.float64) * 1.2
    emp = EmpiricalDenoiser(y, dtype=torch.float64)
    pop = GaussianDenoiser(torch.zeros(2), lam, dtype=torch.float64)
    for sigma in [0.7, 1.0, 3.0]:
        assert float((emp(x, sigma) - pop(x, sigma)).abs().max()) < 0.05


def test_gmm_against_quadrature_1d():
    w, mu, var = np.array([0.3, 0.7]), np.array([-2.0, 1.5]), np.array([0.25, 1.0])
    model = GMMDenoiser(w, mu[:, None], [torch.tensor(v) for v in var], dtype=torch.float64)
    prior = lambda z: (w * stats.norm.pdf(z, mu, np.sqrt(var))).sum()
    for sigma in [0.1, 1.0, 5.0]:
        for x in [-3.0, 0.0, 2.2]:
            lik = lambda z: stats.norm.pdf(x, z, sigma)
            num = integrate.quad(lambda z: z * prior(z) * lik(z), -20, 20, limit=400)[0]
            den = integrate.quad(lambda z: prior(z) * lik(z), -20, 20, limit=400)[0]
            assert abs(float(model(torch.tensor([[x]], dtype=torch.float64), sigma)) - num / den) < 1e-8


def test_gmm_log_density_and_samples():
    rng = np.random.default_rng(1)
    covs = [np.diag([1.0, 0.5]), np.array([[1.0, 0.6], [0.6, 0.8]])]
    means, w = np.array([[2.0, 0.0], [-1.0, 1.0]]), np.array([0.4, 0.6])
    model = GMMDenoiser(w, means, covs, dtype=torch.float64)
    x = rng.normal(size=(7, 2))
    for sigma in [0.0, 0.5]:
        ref = np.log(sum(wk * stats.multivariate_normal(m, c + sigma ** 2 * np.eye(2)).pdf(x)
                         for wk, m, c in zip(w, means, covs)))
        np.testing.assert_allclose(model.log_density(x, sigma).numpy(), ref, rtol=1e-10)
    s = model.sample(40_000, generator=torch.Generator().manual_seed(0)).numpy()
    mean = (w[:, None] * means).sum(0)
    np.testing.assert_allclose(s.mean(0), mean, atol=0.03)      # std error ~ 1.3 / sqrt(4e4) ~ 0.007


def test_gmm_single_component_equals_gaussian():
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    x = np.random.default_rng(2).normal(size=(6, 2))
    a = GMMDenoiser([1.0], np.zeros((1, 2)), [cov], dtype=torch.float64)(x, 0.8)
    b = GaussianDenoiser(np.zeros(2), cov, dtype=torch.float64)(x, 0.8)
    np.testing.assert_allclose(a, b, atol=1e-12)
