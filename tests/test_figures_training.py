"""The training-time figures at a tiny scale: what they save is what the runs measured, the time scales
and the fit agree with brute-force recomputations, and the side-by-side curves of the closed-form models
agree with float64 brute-force denoisers on the same noise draws."""
import json
import math

import numpy as np
import pytest

from compare.errors import common_noise, generalization_gap
from compare.records import read_csv
from figures.side_by_side import side_by_side, split
from figures.training_timescales import mlp_setup, run_dir, timescale_records, training_timescales, unet_setup
from neural import load_denoiser
from neural.checkpoint import read_metrics


def _crossing(steps, values, threshold):
    """First upward crossing of ``threshold``, linear in log-step (brute force, written independently)."""
    for k, (t, v) in enumerate(zip(steps, values)):
        if v >= threshold:
            if k == 0:
                return float(t)
            t0, v0 = steps[k - 1], values[k - 1]
            return float(math.exp(math.log(t0) + (threshold - v0) / (v - v0) * (math.log(t) - math.log(t0))))
    return math.inf


@pytest.fixture(scope="module")
def timescale_figure(tmp_path_factory):
    out = tmp_path_factory.mktemp("timescales")
    setups = [mlp_setup(8, (4, 8, 16), steps_per_n=2, samples=64, n_val=64),
              unet_setup("unet-tiny", 4, (2, 3, 4), steps_per_n=2, samples=8, n_val=8)]
    _, summary = training_timescales(out, setups_=setups, threshold=0.0)
    return out, setups, summary


def test_timescale_figure_saves_what_the_runs_measured(timescale_figure):
    out, setups, summary = timescale_figure
    curves, scales = read_csv(out / "curves.csv"), read_csv(out / "timescales.csv")
    assert (out / "training_timescales.png").stat().st_size > 0
    for setup in setups:
        for n in setup["sizes"]:
            run = run_dir(out / "runs", setup, n)
            record = json.loads((run / "record.json").read_text())
            assert record["n_train"] == n and len(set(record["train_index"])) == n
            assert record["config"]["train"]["batch_size"] == min(n, 512)
            rows = read_metrics(run)
            assert rows[-1]["step"] == setup["steps_per_n"] * n
            sub = curves.where(setup=setup["name"], n=n)
            assert sub.column("step").tolist() == [r["step"] for r in rows]
            np.testing.assert_array_equal(sub.column("replicate_fraction").astype(float),
                                          [r["replicate_fraction"] for r in rows])
            np.testing.assert_array_equal(sub.column("quality_value").astype(float),
                                          [r["sliced_wasserstein_val"] for r in rows])
            q = np.array([r["sliced_wasserstein_val"] for r in rows])
            assert np.isfinite(q).all() and (q > 0).all()
            # threshold 0: every fraction >= 0 crosses at the first checkpoint
            row = scales.where(setup=setup["name"], n=n)[0]
            assert row["tau_mem"] == rows[0]["step"]
            assert row["tau_gen"] == rows[0]["step"]        # the plateau is looked for before tau_mem: here t_1
        # the fit: ordinary least squares on log-log, recomputed with numpy
        tau = scales.where(setup=setup["name"]).column("tau_mem").astype(float)
        slope = np.polyfit(np.log(setup["sizes"]), np.log(tau), 1)[0]
        assert summary[setup["name"]]["fit_tau_mem"]["slope"] == pytest.approx(slope, abs=1e-9)


def test_tau_mem_is_the_interpolated_first_crossing(timescale_figure):
    out, setups, _ = timescale_figure
    setup = setups[0]
    runs = {n: run_dir(out / "runs", setup, n) for n in setup["sizes"]}
    fractions = {n: [r["replicate_fraction"] for r in read_metrics(run)] for n, run in runs.items()}
    threshold = 0.5 * max(max(f) for f in fractions.values()) + 1e-3     # crossed by some run or by none
    rows = timescale_records(setup, runs, threshold=threshold)
    for row in rows:
        steps = [r["step"] for r in read_metrics(runs[row["n"]])]
        assert row["tau_mem"] == pytest.approx(_crossing(steps, fractions[row["n"]], threshold), rel=1e-12)


def _optimal_float64(x, y, s):
    """``sum_i softmax_i(-||x - y_i||^2 / 2 s^2) y_i`` in float64 numpy with an explicit log-sum-exp."""
    logits = -((x[:, None, :] - y[None]) ** 2).sum(-1) / (2 * s * s)
    w = np.exp(logits - logits.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)) @ y


def _gaussian_float64(x, y, s):
    mu, cov = y.mean(0), np.cov(y.T)
    return mu + (x - mu) @ np.linalg.solve(cov + s * s * np.eye(len(mu)), cov).T


def test_side_by_side_matches_brute_force_denoisers(tmp_path):
    kw = dict(n_train=12, n_val=20, steps=20, n_samples=8, n_draws=2)
    _, summary = side_by_side(tmp_path, n_sigmas=6, seed=3, progress=False, **kw)
    gaps, traj = read_csv(tmp_path / "gap.csv"), read_csv(tmp_path / "trajectories.csv")
    data = split(n_train=12, n_val=20, seed=3)
    y, v = data.train.double().numpy(), data.val.double().numpy()
    zt = common_noise(12, (8,), n_draws=2, seed=3).double().numpy()       # the draws the figure used
    zv = common_noise(20, (8,), n_draws=2, seed=4).double().numpy()
    for name, den in (("optimal", _optimal_float64), ("Gaussian (fitted)", _gaussian_float64)):
        rows = gaps.where(model=name)
        for row in rows:
            s = row["sigma"]
            if s < 0.05:          # the figure's models run in float32: compare where the error is not tiny
                continue
            et = np.mean([((den(y + s * z, y, s) - y) ** 2).mean() for z in zt])
            ev = np.mean([((den(v + s * z, y, s) - v) ** 2).mean() for z in zv])
            assert row["e_train"] == pytest.approx(et, rel=2e-3)
            assert row["e_val"] == pytest.approx(ev, rel=2e-3)
            if et > 1e-6:
                assert row["gap"] == pytest.approx((ev - et) / et, rel=5e-3, abs=1e-4)
            else:             # the optimal denoiser returns the training point itself: E_train ~ 0, the gap diverges
                assert name == "optimal" and row["gap"] > 1e6
    # the trained network's curve is the compare function's on the saved run's last state
    ref = generalization_gap(load_denoiser(tmp_path / "run"), data.train, data.val, gaps.where(model="trained MLP")
                             .column("sigma").astype(float), n_draws=2, seed=3, progress=False)
    np.testing.assert_allclose(gaps.where(model="trained MLP").column("gap").astype(float), ref.column("gap"))
    # summary: the peak is the largest gap of the CSV; the typicality the median at the smallest sigma
    for name, entry in summary.items():
        sub = traj.where(model=name)
        small = sub.where(sigma=min(sub.column("sigma").astype(float)))
        assert entry["small_sigma_trajectory"]["typicality_median"] == pytest.approx(
            np.median(small.column("typicality").astype(float)))
        if "peak_gap" in entry:
            g = gaps.where(model=name).column("gap").astype(float)
            assert entry["peak_gap"] == pytest.approx(g.max()) or entry["peak_gap"] == "inf"
    # the optimal denoiser ends on training points: distance/(sigma sqrt d) of order 1, like real noisy data
    assert summary["optimal"]["replicate_fraction"] == 1.0
    assert summary["optimal"]["small_sigma_trajectory"]["normalized_distance_median"] < 3
    assert summary["Gaussian (fitted)"]["small_sigma_trajectory"]["normalized_distance_median"] > 10
