"""Localization: entropy / effective number against brute force and its limits, displacement, reference."""
import numpy as np
import pytest
import torch

from compare.localization import localization
from memgen import Trajectory
from toy_denoisers import Shift
from toymodels import EmpiricalDenoiser, SmoothedDenoiser


def test_effective_number_limits_and_brute_force_entropy(brute):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(25, 5, generator=g, dtype=torch.float64)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    model = EmpiricalDenoiser(y, dtype=torch.float64)
    rows = localization(model, x, [1e-3, 0.8, 1e5], dtype=torch.float64, progress=False)
    small, mid, large = (rows.where(sigma=s) for s in (1e-3, 0.8, 1e5))
    np.testing.assert_allclose(small.column("effective_number").astype(float), 1.0, atol=1e-9)
    np.testing.assert_allclose(large.column("effective_number").astype(float), 25.0, rtol=1e-6)
    _, ent, _ = brute(x.numpy(), y.numpy(), 0.8)
    np.testing.assert_allclose(mid.column("entropy").astype(float), ent, rtol=1e-9)
    np.testing.assert_allclose(mid.column("effective_number").astype(float), np.exp(ent), rtol=1e-9)


def test_smoothed_posterior_is_the_broadened_one(brute):
    y = torch.randn(12, 3, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    rows = localization(SmoothedDenoiser(y, 0.7, dtype=torch.float64), x, [0.5], dtype=torch.float64, progress=False)
    _, ent, _ = brute(x.numpy(), y.numpy(), np.sqrt(0.5 ** 2 + 0.7 ** 2))
    np.testing.assert_allclose(rows.column("entropy").astype(float), ent, rtol=1e-9)


def test_displacement_identity_region_and_reference_distance():
    x = torch.randn(6, 4)
    c = 0.25                                                     # ||D - x|| = c sqrt(d) = 0.5 everywhere
    rows = localization(Shift(c), x, [0.3, 0.7], reference=Shift(-c), progress=False)
    np.testing.assert_allclose(rows.column("displacement").astype(float), 0.5, rtol=1e-6)
    np.testing.assert_allclose(rows.column("reference_distance").astype(float), 1.0, rtol=1e-6)
    assert not any(rows.where(sigma=0.3).column("identity_like"))
    assert all(rows.where(sigma=0.7).column("identity_like"))
    assert all(r["entropy"] is None and r["effective_number"] is None for r in rows)   # no posterior capability
    assert sorted({r["point"] for r in rows}) == list(range(6))


def test_noised_points_use_the_same_draws_at_every_sigma():
    x, z = torch.zeros(4, 2), torch.randn(4, 2)
    rows = localization(Shift(0.0), x, [0.5, 2.0], noise=z, reference=Shift(0.0), progress=False)
    # the reference equals the model: distance 0; displacement 0 (the shift is 0)
    assert max(rows.column("reference_distance").astype(float)) == 0
    model = EmpiricalDenoiser(torch.tensor([[0.0, 0.0], [100.0, 0.0]]))
    near = localization(model, x, [0.5, 2.0], noise=z, progress=False)
    # states sigma*z lie next to the first point: D* = that point, displacement = ||sigma z||
    for r in near:
        assert r["displacement"] == pytest.approx(r["sigma"] * float(z[r["point"]].norm()), rel=1e-5)


def test_trajectory_states_skip_sigma_zero():
    y = torch.randn(10, 2)
    states = torch.randn(3, 4, 2)
    traj = Trajectory(states, torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64), torch.zeros(2, 4, 2))
    rows = localization(EmpiricalDenoiser(y), traj, progress=False)
    assert sorted({(r["step"], r["sigma"]) for r in rows}) == [(0, 2.0), (1, 0.5)]
    assert len(rows) == 8


def test_bad_input():
    y = torch.randn(10, 2)
    traj = Trajectory(torch.randn(2, 3, 2), torch.tensor([1.0, 0.0]), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match="sigmas"):
        localization(Shift(0.0), torch.randn(3, 2), progress=False)
    with pytest.raises(ValueError, match="sigmas"):
        localization(Shift(0.0), traj, [0.1], progress=False)
    with pytest.raises(ValueError, match="noise"):
        localization(Shift(0.0), torch.randn(3, 2), [0.1], noise=torch.randn(2, 2), progress=False)
    with pytest.raises(ValueError, match="trajectory"):
        localization(EmpiricalDenoiser(y), Trajectory(torch.randn(3, 2), torch.ones(3), None), progress=False)
    with pytest.raises(ValueError, match="x"):
        localization(Shift(0.0), torch.randn(3), [0.1], progress=False)
