"""Schedules and their conversions to the canonical (scale, sigma) form round-trip."""
import math

import numpy as np
import pytest
import torch

from memgen import (ddpm_linear_alpha_bar, edm_sigmas, iddpm_cosine_alpha_bar, log_sigmas, ou_delta, ou_to_ve,
                    schedule_sigmas, sigma_to_timestep, ve_to_ou, ve_to_vp, vp_to_ve)


def test_edm_grid_endpoints_and_rho_spacing():
    s = edm_sigmas(18, 0.002, 80.0, 7.0)
    assert len(s) == 19 and s[-1] == 0
    assert math.isclose(float(s[0]), 80.0) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-12)
    assert bool((s[:-1] > s[1:]).all())
    # sigma^(1/rho) is linear in the index
    r = s[:-1] ** (1 / 7)
    np.testing.assert_allclose(np.diff(r.numpy(), 2), 0, atol=1e-12)


def test_vp_ve_round_trip():
    ab = torch.linspace(1e-4, 1.0, 50, dtype=torch.float64)
    scale, sigma = vp_to_ve(ab)
    torch.testing.assert_close(ve_to_vp(sigma), ab)
    torch.testing.assert_close(scale ** 2, ab)
    # the VP marginal variance of unit data: scale^2 (1 + sigma^2) = 1
    torch.testing.assert_close(scale ** 2 * (1 + sigma ** 2), torch.ones_like(ab))


@pytest.mark.parametrize("alpha_bar", [ddpm_linear_alpha_bar(1000), iddpm_cosine_alpha_bar(4000)])
def test_discrete_schedule_timestep_round_trip(alpha_bar):
    sig = schedule_sigmas(alpha_bar)
    assert bool((sig[1:] > sig[:-1]).all())
    idx = torch.tensor([0, 1, 17, len(sig) // 2, len(sig) - 1])
    torch.testing.assert_close(sigma_to_timestep(sig[idx], alpha_bar), idx.double(), atol=1e-9, rtol=0)
    mid = (sig[10].log() + sig[11].log()) / 2
    assert abs(float(sigma_to_timestep(mid.exp(), alpha_bar)) - 10.5) < 1e-9


def test_ddpm_linear_known_values():
    ab = ddpm_linear_alpha_bar(1000, 1e-4, 2e-2)
    assert math.isclose(float(ab[0]), 1 - 1e-4)
    assert float(ab[-1]) < 1e-4     # DDPM's final signal level ~ 4e-5


def test_ou_conversions():
    t = torch.logspace(-3, 1, 30, dtype=torch.float64)
    scale, sigma = ou_to_ve(t)
    torch.testing.assert_close(ve_to_ou(sigma), t)
    torch.testing.assert_close(scale, torch.exp(-t))
    # Delta_t = 1 - e^{-2t} = scale^2 sigma^2 (the OU noise variance is the VE variance rescaled)
    torch.testing.assert_close(torch.as_tensor(ou_delta(t.numpy())), scale ** 2 * sigma ** 2)
    with pytest.raises(ValueError, match="t"):
        ou_to_ve(0.0)


def test_log_sigmas_and_bad_grids():
    s = log_sigmas(64, 0.002, 80.0)
    assert len(s) == 64 and math.isclose(float(s[0]), 0.002) and math.isclose(float(s[-1]), 80.0)
    with pytest.raises(ValueError, match="steps"):
        edm_sigmas(0)
    with pytest.raises(ValueError, match="sigma_min"):
        edm_sigmas(10, sigma_min=-1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        edm_sigmas(10, sigma_min=100.0, sigma_max=1.0)
