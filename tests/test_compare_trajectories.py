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


def test_validation_control_reads_a_generalizing_model_as_fresh_data():
    """Gaussian data: the exact Gaussian denoiser's states read like noisy validation points at every sigma
    (two-sample KS of log-densities below 0.133, the 1% critical value for 300 + 300 draws), and both part from the noisy-training reference at the same sigma of the grid;
    the empirical denoiser's states never part from it, end on training points, and read unlike the control."""
    from compare.trajectories import parting_sigma, typicality_control
    from memgen import edm_sigmas, sample
    from toymodels import EmpiricalDenoiser, GaussianDenoiser

    g = torch.Generator().manual_seed(3)
    d, n = 4, 40
    train = torch.randn(n, d, generator=g, dtype=torch.float64)
    val = torch.randn(2000, d, generator=g, dtype=torch.float64)
    noise = torch.randn(300, d, generator=g, dtype=torch.float64)
    sigmas = edm_sigmas(24, 0.005, 40.0).double()
    out = {}
    for name, model in (("gaussian", GaussianDenoiser(torch.zeros(d), 1.0, dtype=torch.float64)),
                        ("empirical", EmpiricalDenoiser(train, dtype=torch.float64))):
        _, traj = sample(model, noise, sigmas, method="heun", return_trajectory=True)
        rows = trajectory_distances(traj, train, val=val, n_reference=2000, seed=4, progress=False)
        assert len(rows.where(source="validation")) == len(rows.where(source="trajectory"))   # n_val = B
        out[name] = (rows, typicality_control(rows))
    rows, ctrl = out["gaussian"]
    assert max(r["ks_val"] for r in ctrl) < 0.133
    assert ctrl[-1]["val_ks_reference"] > 0.5 and ctrl[0]["val_ks_reference"] < 0.1   # parts only at small sigma
    s_traj, s_val = parting_sigma(ctrl), parting_sigma(ctrl, source="validation")
    assert s_val is not None and s_traj is not None
    grid = sorted(r["sigma"] for r in ctrl)
    assert abs(grid.index(s_traj) - grid.index(s_val)) <= 1
    rows, ctrl = out["empirical"]
    assert parting_sigma(ctrl) is None                            # exact transport of the noisy training data
    assert ctrl[-1]["ks_val"] > 0.5
    last = rows.where(source="trajectory", sigma=grid[0])
    assert np.median(last.column("normalized_distance").astype(float)) < 2.0


def test_validation_control_bad_input():
    from compare.trajectories import parting_sigma, typicality_control
    y = torch.randn(20, 3, dtype=torch.float64)
    tr = _traj(torch.randn(2, 4, 3, dtype=torch.float64), [1.0, 0.0])
    with pytest.raises(ValueError, match="val"):
        trajectory_distances(tr, y, val=torch.randn(5, 4), progress=False)
    bare = typicality_control(trajectory_distances(tr, y, progress=False))      # no control: val columns None
    assert bare[0]["n_val"] == 0 and bare[0]["ks_val"] is None
    with pytest.raises(ValueError, match="control"):
        parting_sigma(bare, source="validation")
    with pytest.raises(ValueError, match="rows"):
        typicality_control([])
    ctrl = typicality_control(trajectory_distances(tr, y, val=y, n_val=7, progress=False))
    assert ctrl[0]["n_val"] == 7
    with pytest.raises(ValueError, match="source"):
        parting_sigma(ctrl, source="train")


def test_reference_pvalue_holds_its_level_with_a_finite_reference():
    """States and reference from one distribution: the percentiles come from m reference draws, so the p-value
    must be the two-sample one. Over 400 seeded repetitions with n = m = 200, p < 0.05 happens about 5% of the
    time (below 8.5%, three standard errors above); the one-sample test against U(0, 1) rejects far more often."""
    from compare.trajectories import typicality_control

    rng = np.random.default_rng(0)
    n = m = 200
    rejected = one_sample = 0
    for _ in range(400):
        ref, states = np.sort(rng.standard_normal(m)), rng.standard_normal(n)
        pct = 50.0 * (np.searchsorted(ref, states, "left") + np.searchsorted(ref, states, "right")) / m
        rows = [{"sigma": 1.0, "source": "trajectory", "n_reference": m, "typicality": float(u), "log_density": 0.0}
                for u in pct]
        rejected += typicality_control(rows)[0]["ks_reference_pvalue"] < 0.05
        one_sample += stats.kstest(pct / 100, "uniform").pvalue < 0.05
    assert rejected / 400 < 0.085
    assert one_sample / 400 > 0.15


def test_parting_sigma_is_where_the_states_stay_apart():
    """One chance rejection at a large sigma is not parting; parting is the sigma from which every smaller
    sigma rejects."""
    from compare.trajectories import parting_sigma

    def control(pvalues):
        return [{"sigma": s, "ks_reference_pvalue": p} for s, p in zip((80.0, 10.0, 1.0, 0.1, 0.01), pvalues)]

    assert parting_sigma(control([0.001, 0.5, 0.5, 0.5, 0.5])) is None
    assert parting_sigma(control([0.001, 0.5, 0.001, 0.001, 0.001])) == 1.0
    assert parting_sigma(control([0.001] * 5)) == 80.0
    assert parting_sigma(control([0.5, 0.5, 0.5, 0.5, 0.001]), alpha=0.01) == 0.01
