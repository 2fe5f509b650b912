"""Samplers: memorization with the optimal denoiser, exact Gaussian statistics, convergence orders."""
import math

import pytest
import torch

from memgen import edm_sigmas, sample
from memgen.data import circle, gaussian
from toymodels import EmpiricalDenoiser, GaussianDenoiser


@pytest.mark.parametrize("method", ["euler", "heun", "ancestral"])
def test_empirical_samples_land_on_training_points(method):
    data = circle()
    model = EmpiricalDenoiser(data.train, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(200, 2, generator=g, dtype=torch.float64)
    x = sample(model, noise, edm_sigmas(40, 0.002, 80.0), method=method, generator=g)
    nn = torch.cdist(x, data.train.double()).min(1).values
    assert float(nn.max()) < 1e-3 * data.params["radius"]


def test_euler_and_heun_converge_with_their_orders():
    """Probability-flow ODE of N(0, diag(lam)): x(s) = x(s0) sqrt((lam + s^2) / (lam + s0^2)) exactly."""
    lam = torch.tensor([4.0, 0.25], dtype=torch.float64)
    model = GaussianDenoiser(torch.zeros(2), lam, dtype=torch.float64)
    noise = torch.randn(64, 2, dtype=torch.float64)
    s0 = 20.0
    errs = {}
    for method in ["euler", "heun"]:
        errs[method] = []
        for steps in [16, 32, 64]:
            # a grid ending at sigma_min > 0 (no final jump): only the ODE's truncation error remains
            grid = edm_sigmas(steps, 1e-3, s0)[:-1]
            exact = noise * s0 * torch.sqrt((lam + 1e-6) / (lam + s0 ** 2))
            errs[method].append(float((sample(model, noise, grid, method=method) - exact).abs().max()))
    e, h = errs["euler"], errs["heun"]
    assert all(h[i] < e[i] for i in range(3))
    assert 1.6 < e[1] / e[2] < 2.5                  # first order: halves per doubling
    assert h[1] / h[2] > 3.2                         # second order: quarters per doubling


def test_heun_reproduces_gaussian_statistics():
    """Mean within 5 standard errors sqrt(lam/N); covariance entries within 5 sqrt(2 lam_max^2 / N)."""
    data = gaussian(n=4, spectrum=[2.0, 0.5], rotate=True, seed=3)
    cov = torch.as_tensor(data.truth["covs"][0])
    model = GaussianDenoiser(torch.zeros(2), cov, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    N = 20_000
    x = sample(model, torch.randn(N, 2, generator=g, dtype=torch.float64), edm_sigmas(60, 0.002, 80.0))
    lam_max = float(torch.linalg.eigvalsh(cov).max())
    assert float(x.mean(0).abs().max()) < 5 * math.sqrt(lam_max / N)
    assert float((torch.cov(x.T) - cov).abs().max()) < 5 * math.sqrt(2 * lam_max ** 2 / N)


def _ancestral_covariance(cov, grid):
    """Exact covariance after the ancestral chain with the linear denoiser D = K x, K = C (C + s^2 I)^-1:
    x' = M x + s_up z, M = K + (s'^2/s^2)(I - K), so Cov' = M Cov M^T + s_up^2 I (start: s0^2 I)."""
    eye = torch.eye(len(cov), dtype=torch.float64)
    c = grid[0] ** 2 * eye
    for s, sn in zip(grid[:-1].tolist(), grid[1:].tolist()):
        k = cov @ torch.linalg.inv(cov + s ** 2 * eye)
        m = k + (sn ** 2 / s ** 2) * (eye - k)
        c = m @ c @ m.T + (sn ** 2 * (s ** 2 - sn ** 2) / s ** 2) * eye
    return c


def test_ancestral_matches_its_kernel_and_converges_to_the_data_covariance():
    cov = torch.tensor([[1.5, 0.4], [0.4, 1.0]], dtype=torch.float64)
    model = GaussianDenoiser(torch.zeros(2), cov, dtype=torch.float64)
    grid = edm_sigmas(60, 0.002, 80.0)
    g = torch.Generator().manual_seed(2)
    N = 20_000
    x = sample(model, torch.randn(N, 2, generator=g, dtype=torch.float64), grid, method="ancestral", generator=g)
    predicted = _ancestral_covariance(cov, grid)
    assert float((torch.cov(x.T) - predicted).abs().max()) < 5 * math.sqrt(2 * 1.7 ** 2 / N)
    # the chain's bias is first order in the step: it shrinks towards the data covariance
    errs = [float((_ancestral_covariance(cov, edm_sigmas(k, 0.002, 80.0)) - cov).abs().max()) for k in (60, 240, 960)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.02


def test_seeded_stochastic_sampler_is_reproducible_and_trajectory_is_consistent():
    model = EmpiricalDenoiser(circle().train, dtype=torch.float64)
    grid = edm_sigmas(10)
    noise = torch.randn(5, 2, dtype=torch.float64)
    a = sample(model, noise, grid, method="ancestral", generator=torch.Generator().manual_seed(7))
    b, traj = sample(model, noise, grid, method="ancestral", generator=torch.Generator().manual_seed(7),
                     return_trajectory=True)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert traj.x.shape == (11, 5, 2) and traj.denoised.shape == (10, 5, 2)
    torch.testing.assert_close(traj.x[0], noise * grid[0])
    torch.testing.assert_close(traj.x[-1], b)
    torch.testing.assert_close(traj.denoised[3], model(traj.x[3], float(grid[3])))


def test_sampler_input_errors():
    model = EmpiricalDenoiser(circle().train)
    with pytest.raises(ValueError, match="method"):
        sample(model, torch.randn(2, 2), edm_sigmas(5), method="rk45")
    with pytest.raises(ValueError, match="decreasing"):
        sample(model, torch.randn(2, 2), torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="noise"):
        sample(model, torch.randn(2), edm_sigmas(5))


@pytest.mark.parametrize("reuse", [False, True])
def test_a_sigma_grid_of_another_shape_is_refused_not_flattened(reuse):
    model = EmpiricalDenoiser(circle().train.double())
    grid = torch.tensor([[1.0, 0.5], [0.1, 0.0]], dtype=torch.float64)      # decreasing once flattened
    with pytest.raises(ValueError, match=r"sigmas: expected a 1-D grid .* got shape \(2, 2\)"):
        sample(model, torch.randn(2, 2, dtype=torch.float64), grid, reuse=reuse)
    with pytest.raises(ValueError, match=r"sigmas: expected a 1-D grid .* got shape \(1,\)"):
        sample(model, torch.randn(2, 2, dtype=torch.float64), [1.0], reuse=reuse)
