"""Tweedie: the score (D - x) / sigma^2 equals the gradient of log p_sigma, computed by autograd."""
import math

import torch

from memgen import score
from toymodels import EmpiricalDenoiser, GMMDenoiser, SmoothedDenoiser


def _log_mixture(x, y, var):
    """log (1/n) sum_i N(x; y_i, var I) (independent of the models' kernels: plain logsumexp)."""
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    d = x.shape[1]
    return torch.logsumexp(-d2 / (2 * var), 1) - math.log(len(y)) - 0.5 * d * math.log(2 * math.pi * var)


def _autograd_score(logp, x):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(logp(x).sum(), x)[0]


def test_empirical_score_is_gradient_of_log_mixture():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(25, 3, generator=g, dtype=torch.float64) * 2
    x = torch.randn(8, 3, generator=g, dtype=torch.float64) * 2
    model = EmpiricalDenoiser(y, dtype=torch.float64)
    for sigma in [0.2, 1.0, 7.0]:
        ref = _autograd_score(lambda z: _log_mixture(z, y, sigma ** 2), x)
        torch.testing.assert_close(score(model, x, sigma), ref, rtol=1e-9, atol=1e-9)


def test_smoothed_score_is_gradient_of_broadened_mixture():
    y = torch.randn(10, 2, dtype=torch.float64) * 3
    x = torch.randn(6, 2, dtype=torch.float64) * 3
    delta = 1.3
    model = SmoothedDenoiser(y, delta, dtype=torch.float64)
    for sigma in [0.1, 1.0, 4.0]:
        ref = _autograd_score(lambda z: _log_mixture(z, y, sigma ** 2 + delta ** 2), x)
        torch.testing.assert_close(score(model, x, sigma), ref, rtol=1e-9, atol=1e-9)


def test_gmm_score_is_gradient_of_its_log_density():
    model = GMMDenoiser([0.5, 0.5], [[1.0, 1.0], [-1.0, -1.0]], [1.0, torch.tensor([0.5, 2.0])], dtype=torch.float64)
    x = torch.randn(9, 2, dtype=torch.float64) * 2
    for sigma in [0.3, 2.0]:
        ref = _autograd_score(lambda z: model.log_density(z, sigma), x)
        torch.testing.assert_close(score(model, x, sigma), ref, rtol=1e-9, atol=1e-9)
