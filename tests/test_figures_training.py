"""Training at a tiny scale: claim 5's runs (lab.claims.timescale_runs) train nested sets with the stated
batch and steps and their time scales agree with brute-force recomputations, and the side-by-side curves of the
closed-form models agree with float64 brute-force denoisers on the same noise draws."""
import json
import math

import numpy as np
import pytest

from compare.gap import common_noise, generalization_gap
from compare.records import read_csv
from compare.timescales import timescales
from lab.claims.networks import trained
from lab.claims.timescale_runs import image_setup, mlp_setup, run_overrides
from figures.side_by_side import side_by_side, split
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


def _settling(steps, quality, until, tol=0.1):
    """Settling time of a lower-is-better quality into the band ``q* + tol (q_1 - q*)`` over the checkpoints
    up to ``until`` (at least the first): the first step from which it stays in the band up to its best value
    (brute force, written independently)."""
    kept = [(t, v) for t, v in zip(steps, quality) if t <= max(until, steps[0])]
    best = min(range(len(kept)), key=lambda k: kept[k][1])
    band = kept[best][1] + tol * (kept[0][1] - kept[best][1])
    return next(float(kept[k][0]) for k in range(best + 1) if all(v <= band for _, v in kept[k:best + 1]))


@pytest.fixture(scope="module")
def timescale_runs(tmp_path_factory):
    """Claim 5's runs at a tiny size: the mixture MLP and the digits MLP, each at three nested sizes."""
    out = tmp_path_factory.mktemp("timescales")
    setups = [mlp_setup(8, (4, 8, 16), steps=24, samples=64, n_val=64),
              image_setup("digits", (4, 8, 16), steps=24, samples=32, batch_max=8)]
    runs = {(s["name"], n): trained(out, run_overrides(s, n), 0) for s in setups for n in s["sizes"]}
    return setups, runs


def test_timescale_runs_train_nested_sets_and_their_time_scales_are_the_brute_force_ones(timescale_runs):
    setups, runs = timescale_runs
    for setup in setups:
        index = {}
        for n in setup["sizes"]:
            run = runs[setup["name"], n]
            record = json.loads((run / "record.json").read_text())
            assert record["n_train"] == n and len(set(record["train_index"])) == n
            assert record["config"]["train"]["batch_size"] == min(n, setup["batch_max"])
            index[n] = record["train_index"]
            rows = read_metrics(run)
            assert rows[-1]["step"] == setup["steps"]                   # one budget for every n
            q = np.array([r["sliced_wasserstein_val"] for r in rows])
            assert np.isfinite(q).all() and (q > 0).all()
            steps = [r["step"] for r in rows]
            ts = timescales(run, quality="sliced_wasserstein_val", memorization="replicate_fraction", threshold=0.0)
            assert ts["tau_mem"] == steps[0]                  # threshold 0: every fraction >= 0 crosses at once
            for threshold in (0.1, 2.0):                      # 2.0: never crossed, tau_gen over the whole run
                ts = timescales(run, quality="sliced_wasserstein_val", memorization="replicate_fraction",
                                threshold=threshold)
                until = _crossing(steps, [r["replicate_fraction"] for r in rows], threshold)
                assert ts["tau_gen"] == _settling(steps, q.tolist(), until)
        sizes = sorted(index)
        for small, large in zip(sizes, sizes[1:]):            # nested: the smaller set is a prefix of the larger
            assert index[large][:small] == index[small]


def test_tau_mem_is_the_interpolated_first_crossing(timescale_runs):
    setups, runs = timescale_runs
    setup = setups[0]
    fractions = {n: [r["replicate_fraction"] for r in read_metrics(runs[setup["name"], n])] for n in setup["sizes"]}
    threshold = 0.5 * max(max(f) for f in fractions.values()) + 1e-3     # crossed by some run or by none
    for n in setup["sizes"]:
        run = runs[setup["name"], n]
        steps = [r["step"] for r in read_metrics(run)]
        ts = timescales(run, quality="sliced_wasserstein_val", memorization="replicate_fraction", threshold=threshold)
        assert ts["tau_mem"] == pytest.approx(_crossing(steps, fractions[n], threshold), rel=1e-12)


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


def test_side_by_side_names_a_bad_scale_or_setting_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="stepz: not a setting"):
        side_by_side(tmp_path, stepz=10)
    with pytest.raises(ValueError, match="scale"):
        side_by_side(tmp_path, scale="huge")
    assert not any(tmp_path.iterdir())
