"""The figure functions at tiny sizes: they run from Python, write their files, and show the papers' effects."""
import numpy as np
import pytest
import torch

from compare.gap import common_noise
from compare.records import read_csv
from figures.circle_panels import gap_and_trajectory_panels, toy_gap
from figures.memorization_capacity import memorization_capacity
from figures.replicate_gallery import smoothed_samples
from memgen.data import circle, mondrian
from memgen.noise import log_sigmas


def _smoothed_float64(x, y, s, delta):
    """Kaiser & Kollmann's smoothed denoiser ``(delta^2 x + s^2 D*(x, t)) / (s^2 + delta^2)``, ``t^2 = s^2 + delta^2``,
    with ``D*`` the softmax-weighted mean of the training points ``y`` (numpy, explicit log-sum-exp)."""
    t2 = s * s + delta * delta
    logits = -((x[:, None, :] - y[None]) ** 2).sum(-1) / (2 * t2)
    w = np.exp(logits - logits.max(1, keepdims=True))
    optimal = (w / w.sum(1, keepdims=True)) @ y
    return (delta * delta * x + s * s * optimal) / t2


def test_toy_gap_is_the_unsquared_gap_of_the_smoothed_denoiser():
    sigmas = log_sigmas(9, 0.05, 50.0)
    out = toy_gap(20, 1.6, sigmas, n_draws=7, seed=4, n_boot=50)
    ds = circle(20)
    curve = []
    for pts, seed in ((ds.train, 4), (ds.val, 5)):       # float64 draws: training from seed, validation seed + 1
        y, z = pts.double().numpy(), common_noise(10, (2,), n_draws=7, seed=seed, dtype=torch.float64).numpy()
        curve.append([np.mean([np.linalg.norm(_smoothed_float64(y + s * zk, ds.train.double().numpy(), s, 1.6) - y,
                                              axis=1).mean() for zk in z]) for s in sigmas.tolist()])
    e_train, e_val = map(np.asarray, curve)
    np.testing.assert_allclose(out["curve"], (e_val - e_train) / e_train, rtol=1e-9, atol=1e-12)
    # the fitted peak lies within its interval and within a grid step of the largest gap on the grid
    assert out["sigma_peak_lo"] <= out["sigma_peak"] <= out["sigma_peak_hi"]
    j = int(np.argmax(out["curve"]))
    assert sigmas[max(j - 1, 0)] <= out["sigma_peak"] <= sigmas[min(j + 1, len(sigmas) - 1)]


def test_toy_gap_peaks_at_intermediate_sigma_shrinks_with_delta_and_density():
    sigmas = log_sigmas(17, 0.01, 100.0)
    p = {key: toy_gap(*key, sigmas, n_draws=100, n_boot=100) for key in ((20, 2.0), (20, 1.2), (28, 1.6), (16, 1.6))}
    for v in p.values():
        assert 0.1 < v["sigma_peak_lo"] and v["sigma_peak_hi"] < 10 and v["gap_peak_lo"] > 0
    assert p[20, 1.2]["gap_peak_lo"] > p[20, 2.0]["gap_peak_hi"]
    assert p[28, 1.6]["gap_peak_hi"] < p[16, 1.6]["gap_peak_lo"]
    assert p[28, 1.6]["sigma_peak"] < p[16, 1.6]["sigma_peak"]          # denser data: the peak moves to smaller sigma


def test_circle_panels_for_the_demo(tmp_path):
    paths, summary = gap_and_trajectory_panels(tmp_path, deltas=(1.6,), n_draws=40, n_samples=60, steps=10)
    assert all(p.is_file() for p in paths)
    gap = read_csv(tmp_path / "circle_gap.csv")
    again = toy_gap(20, 1.6, gap.column("sigma").astype(float), n_draws=40)   # the claims' computation, same seed
    np.testing.assert_allclose(gap.column("gap").astype(float), again["curve"], rtol=1e-12)
    assert summary["gap_peaks"]["1.6"]["sigma_peak"] == pytest.approx(again["sigma_peak"], rel=1e-12)
    traj = read_csv(tmp_path / "circle_trajectories.csv")
    assert set(traj.column("model")) == {"optimal", "smoothed (delta=1.6)", "noisy training data"}
    end = summary["trajectories"]
    assert end["circle / smoothed (delta=1.6)"]["typicality_median"] < 5           # left the noisy data
    assert 20 < end["circle / optimal"]["typicality_median"] < 80                  # stays typical
    assert end["circle / optimal"]["normalized_distance_median"] == pytest.approx(
        end["circle / noisy training data"]["normalized_distance_median"], rel=0.5)


def test_memorization_capacity_counts_replicates_by_the_ratio_criterion(tmp_path):
    paths, summary = memorization_capacity(tmp_path, deltas=(0.0, 0.3), sizes=(8, 16), n_samples=6, steps=6,
                                           n_boot=50, progress=False)
    assert all(p.is_file() for p in paths)
    for n in (8, 16):
        train = mondrian(n, seed=0).train
        for delta in (0.0, 0.3):
            x = smoothed_samples(train, delta, n_samples=6, steps=6, seed=1)
            d = torch.cdist(x.reshape(6, -1).double(), train.reshape(n, -1).double()).sort(1).values
            assert summary[str(delta)][str(n)] == pytest.approx(float((d[:, 0] / d[:, 1] < 1 / 3).double().mean()))
        assert summary["0.0"][str(n)] == 1.0                   # the optimal denoiser reproduces training images
