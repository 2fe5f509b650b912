"""Preconditioning round-trips: a network that outputs the exact target yields the exact denoiser.

The reference denoiser is the empirical (optimal) denoiser of a few points, in float64; the "oracle"
networks below invert the preconditioning from their own inputs only (they see what a trained
network sees), so any mismatch between what the wrapper feeds and how it combines shows up.
"""
import math

import numpy as np
import pytest
import torch

from memgen.noise import ddpm_linear_alpha_bar, iddpm_cosine_alpha_bar
from neural.losses import DDPMLoss, EDMLoss
from neural.precond import EDMPrecond, VPPrecond
from neural.presets import build_network
from toymodels import EmpiricalDenoiser

POINTS = torch.tensor([[1.0, -0.5, 0.3], [-0.8, 0.9, 0.1], [0.2, 0.4, -1.1], [0.5, 0.5, 0.5]])


def exact(x, sigma):
    return EmpiricalDenoiser(POINTS, dtype=torch.float64)(x.double(), sigma.double())


class EDMOracle(torch.nn.Module):
    """F* = (D*(x) - c_skip x) / c_out, with sigma = exp(4 c_noise) and x = input * sqrt(sigma^2 + sd^2)."""

    def __init__(self, sd):
        super().__init__()
        self.sd = sd
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inp, c_noise, labels=None):
        sigma = torch.exp(4 * c_noise.double())
        r = (sigma ** 2 + self.sd ** 2).sqrt()[:, None]
        x = inp.double() * r
        c_skip, c_out = self.sd ** 2 / r ** 2, sigma[:, None] * self.sd / r
        return ((exact(x, sigma) - c_skip * x) / c_out).float()


class EpsOracle(torch.nn.Module):
    """eps* = (x - D*(x)) / sigma, with sigma(t) interpolated in log-sigma between the schedule's steps."""

    def __init__(self, alpha_bar):
        super().__init__()
        self.log_sigma = (0.5 * torch.log((1 - alpha_bar) / alpha_bar)).numpy()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x_vp, t, labels=None):
        idx = np.arange(len(self.log_sigma))
        sigma = torch.as_tensor(np.exp(np.interp(t.double().numpy(), idx, self.log_sigma)))
        x = x_vp.double() * (1 + sigma ** 2).sqrt()[:, None]
        return ((x - exact(x, sigma)) / sigma[:, None]).float()


def _inputs(sigmas, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(sigmas, dtype=torch.float32)
    y = POINTS[torch.randint(len(POINTS), (len(sigmas),), generator=g)]
    return y + s[:, None] * torch.randn(y.shape, generator=g), s


@pytest.mark.parametrize("sigma_data", [0.5, 1.3])
def test_edm_oracle_is_exact(sigma_data):
    x, s = _inputs([0.01, 0.1, 0.4, 1.0, 3.0, 20.0, 80.0] * 3)
    model = EDMPrecond(EDMOracle(sigma_data), sigma_data=sigma_data)
    ref = exact(x, s)
    torch.testing.assert_close(model(x, s).double(), ref, atol=2e-5 * (1 + float(s.max())), rtol=1e-4)


@pytest.mark.parametrize("schedule,alpha_bar", [("linear", ddpm_linear_alpha_bar(1000)),
                                                ("cosine", iddpm_cosine_alpha_bar(4000))])
def test_vp_oracle_is_exact(schedule, alpha_bar):
    sig = torch.sqrt((1 - alpha_bar) / alpha_bar)
    inside = [float(v) for v in torch.logspace(math.log10(sig[0]) + 0.01, math.log10(min(sig[-1], 80.0)) - 0.01, 9)]
    x, s = _inputs(inside * 2, seed=1)
    model = VPPrecond(EpsOracle(alpha_bar), schedule=schedule)
    torch.testing.assert_close(model(x, s).double(), exact(x, s), atol=1e-4 * (1 + float(s.max())), rtol=1e-4)


def test_ddpm_loss_is_the_canonical_error_over_sigma_squared():
    """eps_hat - eps = (y - D(x_ve, sigma_t)) / sigma_t  with  x_ve = x_vp / sqrt(ab_t)."""
    torch.manual_seed(3)
    net = build_network("mlp-small", (3,), width=32, depth=2)
    torch.nn.init.normal_(net.out.weight, std=0.3)
    model = VPPrecond(net, schedule="linear")
    g = torch.Generator().manual_seed(2)
    y = POINTS.repeat(4, 1)
    t = torch.tensor([0, 3, 50, 200, 400, 600, 800, 999] * 2)
    noise = torch.randn(y.shape, generator=g)
    per = DDPMLoss(model)(y, None, t, noise)
    ab = model.alpha_bar[t].float()
    sigma = ((1 - ab) / ab).sqrt()
    x_ve = y + sigma[:, None] * noise
    ref = ((model(x_ve, sigma) - y) ** 2).mean(1) / sigma ** 2
    torch.testing.assert_close(per, ref, rtol=2e-4, atol=1e-6)


def test_edm_loss_is_unit_weighted_network_error():
    """lambda ||D - y||^2 = ||F - (y - c_skip x) / c_out||^2 for the EDM weighting lambda = 1 / c_out^2."""
    torch.manual_seed(4)
    net = build_network("mlp-small", (3,), width=32, depth=2)
    torch.nn.init.normal_(net.out.weight, std=0.3)
    model = EDMPrecond(net)
    g = torch.Generator().manual_seed(5)
    draws = EDMLoss(model).draw(12, (3,), g, "cpu")
    y = POINTS.repeat(3, 1)
    per = EDMLoss(model)(y, None, **draws)
    s = draws["sigma"]
    x = y + s[:, None] * draws["noise"]
    c_skip, c_out, c_in, c_noise = model.coefficients(s)
    target = (y - c_skip[:, None] * x) / c_out[:, None]
    ref = ((net(c_in[:, None] * x, c_noise) - target) ** 2).mean(1)
    torch.testing.assert_close(per, ref, rtol=1e-4, atol=1e-6)
    assert abs(float(draws["sigma"].log().mean()) + 1.2) < 3 * 1.2 / math.sqrt(12)


def test_conditional_labels_and_contract():
    torch.manual_seed(0)
    net = build_network("mlp-small", (3,), num_classes=3, width=16, depth=1)
    torch.nn.init.normal_(net.out.weight, std=0.5)
    model = EDMPrecond(net, event_shape=(3,))
    x, s = POINTS, torch.full((4,), 0.7)
    with pytest.raises(ValueError, match="labels"):
        model(x, s)
    with pytest.raises(ValueError, match="labels"):
        model(x, s, torch.tensor([0, 1, 5, 2]))
    lab = torch.tensor([0, 2, 1, 2])
    torch.testing.assert_close(model.with_labels(lab)(x, s), model(x, s, lab))
    assert not torch.allclose(model(x, s, 0), model(x, s, 1))
    out = model.with_labels(1)(x.numpy().astype(np.float64), 0.7)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, model(x, 0.7, 1).detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="^labels: expected integer"):    # 1.7 is not silently class 1
        model(x, s, torch.tensor([0.0, 1.7, 1.0, 2.0]))
    torch.testing.assert_close(model(x, s, lab.double()), model(x, s, lab))     # integral floats are labels
    with pytest.raises(ValueError, match="sigma"):
        model(x, -1.0, 0)
    with pytest.raises(ValueError, match="x"):
        model(torch.zeros(4, 5), 1.0, 0)


def test_vp_network_states_the_noise_levels_it_was_trained_on():
    """``sigma_range`` of a DDPM-linear VP network: ``sigma_t = sqrt((1 - abar_t) / abar_t)`` at t = 0 and T - 1,
    with ``abar_0 = 1 - 1e-4`` (beta_1 = 1e-4), so sigma_0 = sqrt(1e-4 / (1 - 1e-4))."""
    lo, hi = VPPrecond(torch.nn.Linear(2, 2), schedule="linear").sigma_range
    assert lo == pytest.approx((1e-4 / (1 - 1e-4)) ** 0.5, rel=1e-9)
    assert hi > 100 and lo < hi


def test_network_without_parameters_computes_on_the_cpu():
    class Zero(torch.nn.Module):
        def forward(self, x, noise_label, labels=None):
            return torch.zeros_like(x)
    x = torch.randn(3, 2, dtype=torch.float64)
    out = EDMPrecond(Zero())(x, 0.5)                       # F = 0: D = c_skip x = x / (1 + sigma^2 / sd^2)
    assert torch.allclose(out, x / (1 + 0.25 / 0.25), atol=1e-7)
