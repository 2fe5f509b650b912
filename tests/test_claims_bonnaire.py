"""Claims 5-7 (Bonnaire et al.): each criterion separates its positive and negative control at quick scale, and
the statistics behind them agree with independent brute-force references."""
import math

import numpy as np
import pytest
from scipy import stats

from lab.claims import bonnaire
from lab.claims.registry import CLAIMS
from lab.claims.timescale_runs import QUALITY_SIGMA


def _verdict(run, number, tmp_path, seeds=(0,)):
    return run(CLAIMS[number].settings("quick"), tmp_path, list(seeds), False)


# ---- claim 5

def _rows(steps, fraction, quality, sigma=(0.1, QUALITY_SIGMA + 0.05, 5.0)):
    """Metric rows of one run: the replicate fraction, and ``e_val`` per sigma (the quality at the middle sigma,
    other sigmas a decoy that improves on another time scale)."""
    return [{"step": t, "replicate_fraction": f, "replicate_fraction_lo": f / 2, "replicate_fraction_hi": (1 + f) / 2,
             "sigma": list(sigma), "e_val": [1.0 / t, q, 1.0]} for t, f, q in zip(steps, fraction, quality)]


def test_run_times_search_tau_gen_over_the_whole_run_not_only_before_tau_mem():
    steps = [10, 20, 40, 80, 160, 320]
    frac = [0.0, 0.3, 0.9, 1.0, 1.0, 1.0]                 # crosses 0.1 between 10 and 20
    quality = [5.0, 4.0, 3.0, 2.0, 1.05, 1.0]             # settles (10% band: <= 1.4) at 160, after tau_mem
    t = bonnaire.run_times(_rows(steps, frac, quality))
    assert t["tau_mem"] == pytest.approx(math.exp(math.log(10) + (0.1 / 0.3) * math.log(2)), rel=1e-12)
    assert t["tau_gen"] == 160.0 and t["tau_gen"] > t["tau_mem"]
    assert t["replicate_fraction"] == 1.0 and t["replicate_fraction_lo"] == 0.5
    assert bonnaire.run_times(_rows(steps, [0.0] * 6, quality))["tau_mem"] == math.inf    # censored


def _synthetic(slope_mem, seeds=3, sizes=(16, 32, 64, 128, 256), jitter=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return [{"n": float(n), "seed": s, "tau_mem": 50.0 * n ** slope_mem * math.exp(jitter * rng.standard_normal()),
             "tau_gen": 30.0 * math.exp(jitter * rng.standard_normal())} for s in range(seeds) for n in sizes]


def test_window_conditions_pass_a_proportional_tau_mem_and_reject_a_flat_one():
    conds, nums = bonnaire.window_conditions(_synthetic(1.0), "", 0)
    assert [c.status for c in conds] == ["pass", "pass", "pass"]
    assert nums["censored"] == 0 and nums["runs"] == 15
    flat, _ = bonnaire.window_conditions(_synthetic(0.0), "", 0)
    assert flat[0].status == "fail" and flat[2].status == "pass"


def test_window_conditions_noisy_slope_is_inconclusive_and_censored_runs_are_not_fitted():
    noisy, _ = bonnaire.window_conditions(_synthetic(1.0, jitter=3.0, seed=2), "", 0)
    assert noisy[0].lo < 0.5 < 1.5 < noisy[0].hi and noisy[0].status == "inconclusive"
    wide, _ = bonnaire.window_conditions(_synthetic(-2.0, jitter=2.0, seed=2), "", 0)
    assert wide[0].hi < 0.5 and wide[0].hi - wide[0].lo > 1.0 and wide[0].status == "inconclusive"   # max_width
    rows = _synthetic(1.0)
    for r in rows:
        if r["n"] == 256:
            r["tau_mem"] = math.inf
    conds, nums = bonnaire.window_conditions(rows, "", 0)
    assert nums["censored"] == 3 and nums["fit_tau_mem"]["n_used"] == 12


def test_log_window_is_the_mean_log_ratio_over_memorizing_runs():
    rows = _synthetic(1.0)
    rows[0]["tau_mem"] = math.inf
    est, lo, hi = bonnaire._log_window(rows, 0)
    brute = np.mean([math.log(r["tau_mem"] / r["tau_gen"]) for r in rows if math.isfinite(r["tau_mem"])])
    assert est == pytest.approx(brute, rel=1e-12) and lo <= est <= hi
    assert all(math.isnan(v) for v in bonnaire._log_window([r | {"tau_mem": math.inf} for r in rows], 0))


def test_claim5_positive_control_rf_model_is_reproduced(tmp_path):
    out = _verdict(bonnaire.timescale_window_positive, 5, tmp_path)
    assert out.verdict[0] == "reproduced", out.verdict


def test_claim5_negative_control_empirical_denoiser_is_not_reproduced(tmp_path):
    out = _verdict(bonnaire.timescale_window_negative, 5, tmp_path)
    assert out.verdict[0] == "not reproduced", out.verdict
    assert out.conditions[0].value == 0.0 and out.conditions[0].status == "fail"      # tau_mem = first checkpoint
    assert {r["regime"] for r in out.regimes} == {"memorizing"}


# ---- claim 6

def test_ks_target_is_the_95_percent_bound_of_independent_draws():
    """The target 1.36 / sqrt(m): m = 200 uniform draws exceed it in about 5% of 2,000 trials."""
    rng = np.random.default_rng(0)
    ks = [stats.kstest(rng.random(200), "uniform").statistic for _ in range(2000)]
    assert 0.03 < np.mean(np.asarray(ks) > 1.36 / math.sqrt(200)) < 0.07


@pytest.mark.slow
def test_claim6_separates_its_controls(tmp_path):
    pos = _verdict(bonnaire.spectrum_positive, 6, tmp_path / "pos")
    neg = _verdict(bonnaire.spectrum_negative, 6, tmp_path / "neg")
    assert pos.verdict[0] == "reproduced", pos.verdict
    assert neg.verdict[0] == "not reproduced", neg.verdict
    assert all(c.status == "fail" for c in neg.conditions)


# ---- claim 7

def test_with_trends_sets_the_least_squares_slope_and_keeps_the_residuals():
    rows = [{"psi_n": p, "seed": 0, "tau_mem": 7.0 * p ** 0.6 * (1 + 0.1 * k % 3), "tau_gen": 3.0 + k}
            for k, p in enumerate((1.5, 2.0, 3.0, 4.0, 6.0))]
    out = bonnaire.with_trends(rows, {"tau_mem": 1.0, "tau_gen": 0.0})
    lx = np.log([r["psi_n"] for r in rows])
    for key, slope in (("tau_mem", 1.0), ("tau_gen", 0.0)):
        before, after = np.log([r[key] for r in rows]), np.log([r[key] for r in out])
        assert stats.linregress(lx, after).slope == pytest.approx(slope, abs=1e-12)
        fit_b, fit_a = stats.linregress(lx, before), stats.linregress(lx, after)
        np.testing.assert_allclose(after - fit_a.intercept - fit_a.slope * lx,
                                   before - fit_b.intercept - fit_b.slope * lx, atol=1e-12)


def test_claim7_separates_its_controls(tmp_path):
    pos = _verdict(bonnaire.rf_window_positive, 7, tmp_path / "pos")
    neg = _verdict(bonnaire.rf_window_negative, 7, tmp_path / "neg")
    assert pos.verdict[0] == "reproduced", pos.verdict
    assert neg.verdict[0] == "not reproduced", neg.verdict
    assert [c.status for c in neg.conditions] == ["fail", "fail"]
