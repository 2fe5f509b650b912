"""Timescales against closed forms: log-linear crossings, geometric relaxation, exact power laws."""
import json
import math

import numpy as np
import pytest

from compare.timescales import fit_tau_mem, metric_rows, series, sweep_timescales, tau_gen, tau_mem, timescales

STEPS = np.unique(np.round(np.logspace(1, 5, 33))).astype(float)


def test_tau_mem_is_exact_for_a_series_linear_in_log_step():
    """m = a log t + b crosses theta at t* = exp((theta - b) / a), and log-step interpolation is exact."""
    a, b = 0.1, -0.6
    m = a * np.log(STEPS) + b
    for theta in (0.05, 0.2, 0.3):
        assert tau_mem(STEPS, m, threshold=theta) == pytest.approx(math.exp((theta - b) / a), rel=1e-12)
    assert tau_mem(STEPS, m, threshold=10.0) == math.inf
    assert tau_mem(STEPS, m, threshold=-5.0) == STEPS[0]


def test_tau_gen_of_geometric_relaxation():
    """q_k = q* + (q_1 - q*) r^k: the first k with r^k <= tol is ceil(log tol / log r)."""
    r, tol = 0.7, 0.05
    k = np.arange(len(STEPS))
    q = 2.0 + 3.0 * r ** k
    expected = STEPS[math.ceil(math.log(tol) / math.log(r))]
    assert tau_gen(STEPS, q, tol=tol) == expected
    assert tau_gen(STEPS, -q, tol=tol, higher_is_better=True) == expected
    assert tau_gen(STEPS, 7 * q - 1, tol=tol) == expected                       # scale-free
    bump = q.copy()
    bump[-5:] += 0.5                                                              # quality degrades late
    assert tau_gen(STEPS, bump, tol=tol) == expected


def test_tau_gen_is_the_settling_time_not_an_early_dip():
    """An early dip into the band that leaves it again is not the plateau: tau_gen is the last entry into
    the band before the best value; ``until`` (tau_mem) keeps the memorizing phase out of the best value."""
    q = np.array([10.0, 1.5, 6.0, 4.0, 1.9, 1.2, 1.0, 1.1, 0.5, 0.2])         # band: 1 + 0.1 * 9 = 1.9
    t = np.arange(1.0, 11.0)
    assert tau_gen(t, q, tol=0.1, until=7.5) == 5.0            # dip at t=2 left the band; settled at t=5
    assert tau_gen(t, q, tol=0.1, until=2.0) == 2.0            # up to t=2 the dip is the best value
    assert tau_gen(t, q, tol=0.1) == 7.0                       # best 0.2 at t=10: band 1.18; settles at t=7
    noisy = np.r_[q[:7], 1.0 + 0.3 * np.sin(np.arange(1, 21))]      # a noisy plateau: best ~0.70, band ~1.63
    assert tau_gen(np.arange(1.0, noisy.size + 1), noisy, tol=0.1) == 6.0       # 1.9 at t=5 is outside it
    with pytest.raises(ValueError, match="until"):
        tau_gen(t, q, until=-1.0)


def test_fit_recovers_exact_and_noisy_power_laws():
    n = np.array([256, 512, 1024, 2048, 4096, 8192], dtype=float)
    exact = fit_tau_mem(n, 3.0 * n, n_boot=200)
    assert exact["slope"] == pytest.approx(1.0, abs=1e-12) and exact["intercept"] == pytest.approx(math.log(3.0))
    assert exact["slope_hi"] - exact["slope_lo"] < 1e-9
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(40):
        tau = 0.5 * n ** 1.3 * np.exp(0.1 * rng.standard_normal(n.size))
        fit = fit_tau_mem(n, tau, n_boot=200, seed=1)
        hits += fit["slope_lo"] <= 1.3 <= fit["slope_hi"]
        assert fit["slope_boot_lo"] <= fit["slope"] <= fit["slope_boot_hi"]
    assert hits >= 34                                  # 95% intervals: about 38 of 40
    censored = fit_tau_mem(np.r_[n, 16384.0], np.r_[3.0 * n, np.inf], n_boot=50)
    assert censored["n_used"] == 6 and censored["slope"] == pytest.approx(1.0)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="steps"):
        tau_mem([10, 5, 20], [0, 0, 1])
    with pytest.raises(ValueError, match="values"):
        tau_mem([1, 2], [0, np.nan])
    with pytest.raises(ValueError, match="tol"):
        tau_gen([1, 2], [1, 0], tol=1.5)
    with pytest.raises(ValueError, match="n"):
        fit_tau_mem([10, 10, 10], [1, 2, 3])


def _run(folder, steps, frac, gap, n):
    folder.mkdir(parents=True)
    sig = [0.1, 1.0, 10.0]
    rows = [{"step": int(s), "replicate_fraction": f, "sigma": sig, "gap": [0.0, g, 0.0],
             "sliced_wasserstein_val": 1.0 / (1 + s)} for s, f, g in zip(steps, frac, gap)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "record.json").write_text(json.dumps({"n_train": n}))


def test_series_and_sweep_tables(tmp_path):
    steps = STEPS[:10]
    runs = []
    for i, n in enumerate((100, 200, 400)):
        frac = np.clip(0.2 * np.log(steps / (10 * n / 100)), 0, 1)          # crosses 0.1 at t = 10 n/100 e^0.5
        name = f"{i:03d}_subset={n}"
        _run(tmp_path / name, steps, frac, frac / 2, n)
        runs.append({"name": name, "values": {"data.subset": n}})
    (tmp_path / "sweep.json").write_text(json.dumps({"axes": {"data.subset": [100, 200, 400]}, "runs": runs}))
    rows = metric_rows(tmp_path / runs[0]["name"])
    t, g = series(rows, "gap", sigma=1.2)
    np.testing.assert_allclose(g, [r["gap"][1] for r in rows])
    np.testing.assert_allclose(series(rows, "gap", reduce="mean")[1], [r["gap"][1] / 3 for r in rows])
    table = sweep_timescales(tmp_path, quality="sliced_wasserstein_val", threshold=0.1)
    n = np.array([r["n"] for r in table], dtype=float)
    np.testing.assert_allclose([r["tau_mem"] for r in table], 10 * n / 100 * math.exp(0.5), rtol=1e-9)
    assert fit_tau_mem(n, [r["tau_mem"] for r in table], n_boot=50)["slope"] == pytest.approx(1.0)
    gap_tau = timescales(tmp_path / runs[1]["name"], memorization="gap", threshold=0.05)["tau_mem"]
    assert gap_tau == pytest.approx(20 * math.exp(0.5), rel=1e-9)


def test_metric_rows_of_a_run_never_measured_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="^run: no metrics file"):
        metric_rows(tmp_path)
    assert metric_rows([{"step": 1}]) == [{"step": 1}]


def test_slope_interval_of_an_exact_power_law_from_three_runs():
    """tau = 5 n exactly: every replicate that drew two sizes or more has slope 1; those that drew one size have
    none (not a round-off slope near 0), so the bootstrap interval is [1, 1]."""
    fit = fit_tau_mem([2.0, 4.0, 8.0], [10.0, 20.0, 40.0], seed=0)
    assert fit["slope_boot_lo"] == pytest.approx(1.0, abs=1e-9) and fit["slope_boot_hi"] == pytest.approx(1.0, abs=1e-9)
