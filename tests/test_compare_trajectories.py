"""Trajectory distances and typicality against a float64 brute force, uniformity and the extremes."""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from compare.trajectories import trajectory_distances
from memgen import Trajectory


def _traj(states, sigmas):
    sig = torch.as_tensor(sigmas, dtype=torch.float64)
    return Trajectory(states, sig, torch.zeros(len(sigmas) - 1, *states.shape[1:]))


def test_matches_brute_force_across_chunks():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(300, 2, 3, generator=g, dtype=torch.float64) + 5.0       # uncentred data
    sig = [3.0, 0.4, 0.05, 0.0]
    states = y[:4] + torch.randn(4, 4, 2, 3, generator=g, dtype=torch.float64) * torch.tensor(sig)[:, None, None, None]
    rows = trajectory_distances(_traj(states, sig), y, n_reference=50, budget=4096, progress=False)
    assert len(rows) == 12                                                    # sigma = 0 skipped
    yf = y.reshape(300, -1).numpy()
    for r in rows:
        x = states[r["step"], r["sample"]].reshape(-1).numpy()
        d2 = ((x - yf) ** 2).sum(1)
        s = r["sigma"]
        logp = logsumexp(-d2 / (2 * s ** 2)) - math.log(300) - 3 * math.log(2 * math.pi * s ** 2)
        assert r["nearest_distance"] == pytest.approx(math.sqrt(d2.min()), rel=1e-9)
        assert r["nearest_index"] == int(d2.argmin())
        assert r["normalized_distance"] == pytest.approx(math.sqrt(d2.min()) / (s * math.sqrt(6)), rel=1e-9)
        assert r["log_density"] == pytest.approx(logp, rel=1e-9, abs=1e-9)
        assert 0 <= r["typicality"] <= 100


def test_typicality_of_real_noisy_training_samples_is_uniform():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(40, 16, generator=g, dtype=torch.float64) * 2
    sig = torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64)
    idx = torch.randint(0, 40, (3, 500), generator=g)
    states = y[idx] + sig[:, None, None] * torch.randn(3, 500, 16, generator=g, dtype=torch.float64)
    rows = trajectory_distances(_traj(states, sig), y, n_reference=4000, seed=2, progress=False)
    for s in sig.tolist():
        pct = rows.where(sigma=s).column("typicality").astype(float) / 100
        assert stats.kstest(pct, "uniform").pvalue > 0.01
    # small sigma: the nearest point is the source and ||x - y|| / (sigma sqrt(d)) ~ chi_16 / 4
    small = rows.where(sigma=0.1)
    np.testing.assert_array_equal(small.column("nearest_index").astype(int), idx[2].numpy())
    chi_mean = math.sqrt(2) * math.gamma(8.5) / math.gamma(8) / 4
    assert small.column("normalized_distance").astype(float).mean() == pytest.approx(chi_mean, rel=0.03)


def test_atypical_states_sit_at_the_ends():
    y = torch.randn(30, 8, dtype=torch.float64)
    far = y[:5] + 50.0
    on = y[:5].clone()
    rows = trajectory_distances(_traj(torch.stack([far, on]), [0.05, 0.01]), y, n_reference=500, progress=False)
    assert all(r["typicality"] == 0 for r in rows.where(step=0))               # far from every noisy sample
    assert all(r["typicality"] == 100 for r in rows.where(step=1))             # closer than noise ever leaves
    assert all(r["nearest_distance"] < 1e-6 for r in rows.where(step=1))


def test_reference_draws_are_seeded():
    y = torch.randn(20, 3, dtype=torch.float64)
    states = torch.randn(2, 6, 3, dtype=torch.float64)
    a = trajectory_distances(_traj(states, [1.0, 0.3]), y, n_reference=64, seed=5, progress=False)
    b = trajectory_distances(_traj(states, [1.0, 0.3]), y, n_reference=64, seed=5, tags={"m": "x"}, progress=False)
    assert a.column("typicality").tolist() == b.column("typicality").tolist()
    assert b[0]["m"] == "x"


def test_bad_input():
    y = torch.randn(20, 3)
    with pytest.raises(TypeError, match="trajectory"):
        trajectory_distances(torch.randn(2, 4, 3), y, progress=False)
    with pytest.raises(ValueError, match="trajectory"):
        trajectory_distances(_traj(torch.randn(2, 4, 2), [1.0, 0.0]), y, progress=False)
    with pytest.raises(ValueError, match="trajectory"):
        trajectory_distances(_traj(torch.randn(3, 4, 3), [1.0, 0.0]), y, progress=False)
    with pytest.raises(ValueError, match="sigma"):
        trajectory_distances(_traj(torch.randn(2, 4, 3), [1.0, -1.0]), y, progress=False)
    with pytest.raises(ValueError, match="n_reference"):
        trajectory_distances(_traj(torch.randn(2, 4, 3), [1.0, 0.0]), y, n_reference=0, progress=False)
    with pytest.raises(ValueError, match="train"):
        trajectory_distances(_traj(torch.randn(2, 4, 3), [1.0, 0.0]), torch.randn(0, 3), progress=False)
