"""Bonnaire, Urfin, Biroli & Mézard's claims 5-7: tau_gen flat and tau_mem ∝ n in training; the RF theory.

Claim 5. Criterion (fixed before the run): per run (one network per training-set size n and seed, the same step
budget for every n, :mod:`lab.claims.timescale_runs`), tau_mem is the first crossing of 0.1 by the replicate
fraction (``inf``: censored, not memorized within the budget) and tau_gen the settling time over the WHOLE run
(:func:`compare.timescales.tau_gen` with no ``until``: the first checkpoint from which the validation denoising
error ``e_val`` at sigma 0.57 stays within 10% of its whole improvement up to its best value), so tau_gen is
searched independently of tau_mem. Per data set of the scale's ``data_sets``, all main: (a) the log-log slope of
tau_mem against n over the memorizing runs in [0.5, 1.5] (1: ∝ n; the half-unit margins tell it from a flat 0
and a quadratic 2), its interval narrower than 1; (b) the log-log slope of tau_gen against n over all runs in
[-0.3, 0.3] (flat), its interval narrower than 0.6; (c) the window: the mean of log(tau_mem / tau_gen) over the
memorizing runs above ln(10)/8 = 0.29 (one checkpoint interval of the log grid, the finest separation the
checkpoints resolve). Slopes and mean with the two-level bootstrap (seeds, then runs). Censored runs are kept in
the regime table and counted, not fitted. ``e_val`` is used because it improves from initialization on every data
set, which the samples' sliced Wasserstein distance to held-out data does not on Mondrian (probe numbers in
:mod:`lab.claims.timescale_runs`). At cpu scale: the residual MLP on scikit-learn's digits (n = 16..128) and,
at width 256, on 8x8 Mondrian images (n = 16..256), 6,000 steps for every n, batch min(n, 16). Positive control: the random-features model's closed-form training
(Gaussian-equivalent U, psi_p = 32, t = 0.01) at psi_n = n/d ∝ n, where tau_mem ∝ psi_n and tau_gen is flat
(claim 7), with its own time scales (the test-train gap at half its final value; the score error half-way to its
minimum). Negative control: the empirical denoiser of each run's training set as every checkpoint (it copies
from the first step on, so tau_mem is the first checkpoint whatever n, and no window opens).

Claim 6. Criterion: the Kolmogorov-Smirnov distance between the saddle-point density of U (tanh, t = 0.01) and
the eigenvalues of (a) the Gaussian-equivalent U at d_ge, Sigma = I, (b) the same with the two-eigenvalue Sigma,
(c) the true U (exact noise expectations) at d_true, Sigma = I, continuous part (its delta peak is spread by
O(s_t^2 / sqrt d)), (d) the same with the two-eigenvalue Sigma; each below 1.36 / sqrt(m), m the number of
eigenvalues compared (the 95% bound of the KS distance of m independent draws from the density: eigenvalues
repel, so a spectrum that follows the density deviates less than independent draws, and a larger distance is a
mismatch, not finite-size sampling). All four are main (the theory must hold for the true U, which is the RF
model, and for its Gaussian equivalent, from which it is derived). Mean over seeds with the bootstrap interval.
Positive control: Gaussian-equivalent matrices of twice d_ge in every slot (they converge to the density).
Negative control: the theory at a wrong psi_n (twice the matrices') against the same matrices.

Claim 7. Criterion: in the RF model's closed-form training (Gaussian-equivalent U, tanh, t = 0.01), with the
half-way times of :func:`toymodels.rf.crossing_times` per (psi_n, seed), (a) the log-log slope of tau_mem
against psi_n in [0.8, 1.2] and (b) that of tau_gen in [-0.2, 0.2], each with its interval narrower than 0.4
(the region's width), both main, with the two-level bootstrap (seeds, then psi_n). Positive control: the same
runs' times with their trends set to the claim's (log tau = slope log psi_n + the measured runs' own residuals
about their least-squares line: the claim holds exactly, with the measured scatter). Negative control: tau_mem
and tau_gen swapped (the criterion must reject times that do not scale as claimed).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from compare.timescales import series, tau_gen, tau_mem
from figures import rf_spectrum
from lab.claims.timescale_runs import QUALITY, QUALITY_SIGMA, image_setup, mlp_setup, run_overrides
from lab.run_metrics import METRICS
from neural import read_metrics
from neural.checkpoint import checkpoint_steps
from neural.measure import Measurement
from neural.training import load_training_data
from toymodels import EmpiricalDenoiser
from toymodels.rf import crossing_times, gaussian_equivalent_U, solve_spectrum
from toymodels.rf.problems import log_times, loss_curves, rf_problem
from toymodels.rf.spectrum import ks_distance

from .base import (Claim, Control, Outcome, fmt, fmt_interval, loglog_fit, new_figure, progress_bar, regime,
                   save_figure, seed_mean)
from .networks import run_config, trained
from .verdicts import Condition

PAPER = "Bonnaire et al."

MEM_THRESHOLD = 0.1
"""tau_mem: the first checkpoint (interpolated) where the replicate fraction reaches this."""

WINDOW = math.log(10) / 8
"""Claim 5 (c): the smallest mean log(tau_mem / tau_gen) that is a window (one checkpoint interval, 8 per decade)."""

RF_T = 0.01
"""The diffusion time of the RF model in claims 5 (positive control), 6 and 7."""


# ---- the RF model's closed-form training (claim 7, and claim 5's positive control)

@lru_cache(maxsize=8)
def _rf_times(d: int, psi_p: float, psi_ns: tuple, seeds: tuple) -> tuple:
    """``(psi_n, seed, tau_mem, tau_gen)`` per run of the RF model's closed-form training (Gaussian-equivalent U),
    read off its loss curves by :func:`toymodels.rf.crossing_times` (cached: claims and controls share them)."""
    grid = np.append(log_times(1e9, 500), np.inf)
    rows = []
    for psi_n in psi_ns:
        for seed in seeds:
            m = crossing_times(loss_curves(rf_problem(psi_p, psi_n, d, RF_T, seed=seed, matrices="ge"), grid))
            rows.append((float(psi_n), int(seed), float(m["tau_mem"]), float(m["tau_gen"])))
    return tuple(rows)


def _rf_rows(rf: dict, seeds) -> list:
    """:func:`_rf_times` of the settings ``rf`` (``d``, ``psi_p``, ``psi_ns``) as dicts."""
    rows = _rf_times(int(rf["d"]), float(rf["psi_p"]), tuple(float(p) for p in rf["psi_ns"]), tuple(seeds))
    return [dict(zip(("psi_n", "seed", "tau_mem", "tau_gen"), r)) for r in rows]


def _slope_condition(name: str, text: str, fit: dict, low: float, high: float) -> Condition:
    """A condition on a fit's log-log slope: inside ``[low, high]``, its interval narrower than the region."""
    return Condition(name, text, fit["slope"], fit["slope_boot_lo"], fit["slope_boot_hi"], low=low, high=high,
                     max_width=high - low)


def _fits(x, rows: list, seed: int) -> dict:
    """Two-level (seeds, then runs) log-log fits of ``tau_mem`` and ``tau_gen`` of ``rows`` against ``x``."""
    clusters = np.asarray([r["seed"] for r in rows], dtype=np.int64)
    return {k: loglog_fit(np.asarray(x, dtype=np.float64), np.asarray([r[k] for r in rows], dtype=np.float64),
                          seed, clusters=clusters) for k in ("tau_mem", "tau_gen")}


# ---- claim 5

def run_times(rows) -> dict:
    """One run's ``tau_mem`` (replicate fraction crossing :data:`MEM_THRESHOLD`; ``inf``: censored), ``tau_gen``
    (settling time of ``e_val`` at :data:`~lab.claims.timescale_runs.QUALITY_SIGMA` over the whole run) and
    the final replicate fraction with its interval, from its metric rows."""
    last = max(rows, key=lambda r: r["step"])
    return {"tau_mem": tau_mem(*series(rows, "replicate_fraction"), threshold=MEM_THRESHOLD),
            "tau_gen": tau_gen(*series(rows, QUALITY, sigma=QUALITY_SIGMA)),
            "replicate_fraction": float(last["replicate_fraction"]),
            "replicate_fraction_lo": float(last["replicate_fraction_lo"]),
            "replicate_fraction_hi": float(last["replicate_fraction_hi"])}


def _log_window(rows: list, seed: int) -> tuple:
    """Mean of ``log(tau_mem / tau_gen)`` over the memorizing runs (finite tau_mem) with the two-level interval;
    NaN when no run memorized."""
    per_seed = [[math.log(r["tau_mem"] / r["tau_gen"]) for r in rows if r["seed"] == s and math.isfinite(r["tau_mem"])]
                for s in sorted({r["seed"] for r in rows})]
    per_seed = [v for v in per_seed if v]
    return seed_mean(per_seed, seed=seed) if per_seed else (math.nan, math.nan, math.nan)


def window_conditions(rows: list, label: str, seed: int) -> tuple[list, dict]:
    """Claim 5's conditions (a)-(c) (module doc) on ``rows`` (``n``, ``seed``, ``tau_mem``, ``tau_gen`` per run),
    named with ``label``; and their numbers."""
    fits = _fits([r["n"] for r in rows], rows, seed)
    window = _log_window(rows, seed)
    sfx = f" {label}" if label else ""
    conds = [_slope_condition(f"(a){sfx}", "log-log slope of tau_mem against n (memorizing runs) is about 1",
                              fits["tau_mem"], 0.5, 1.5),
             _slope_condition(f"(b){sfx}", "log-log slope of tau_gen against n is about 0", fits["tau_gen"], -0.3, 0.3),
             Condition(f"(c){sfx}", "mean log(tau_mem / tau_gen) over memorizing runs is a window (> one checkpoint)",
                       *window, low=WINDOW)]
    censored = sum(not math.isfinite(r["tau_mem"]) for r in rows)
    return conds, {"fit_tau_mem": fits["tau_mem"], "fit_tau_gen": fits["tau_gen"], "log_window": list(window),
                   "censored": censored, "runs": len(rows)}


def _setups(s: dict) -> list:
    """One set-up per data set of the scale (``data_sets``, each with its own ``sizes`` or the scale's): Bonnaire et
    al.'s Gaussian mixture or an image set."""
    kw = dict(steps=s["steps"], batch_max=s["batch_max"], samples=s["samples"])
    return [mlp_setup(d["d"], d.get("sizes", s["sizes"]), n_val=d["n_val"], **kw) if d["name"] == "gmm" else
            image_setup(d["name"], d.get("sizes", s["sizes"]), params=d.get("params"), width=d.get("width"), **kw)
            for d in s["data_sets"]]


def _regime_row(setup: dict, seed: int, n: int, t: dict) -> dict:
    return {"data": setup["name"], "n": float(n), "seed": seed, "steps": float(setup["steps"]),
            "replicate_fraction": t["replicate_fraction"],
            "memorized_in_budget": "yes" if math.isfinite(t["tau_mem"]) else "no (censored)",
            "regime": regime(t["replicate_fraction_lo"], t["replicate_fraction_hi"])}


def _runs(s: dict, seeds) -> list:
    """``[(setup, seed, n)]``: one run per data set, seed and training-set size."""
    return [(setup, sd, n) for setup in _setups(s) for sd in seeds for n in setup["sizes"]]


def planned_runs(s: dict, seeds) -> list:
    """``[(values, seed)]`` of every network claim 5 trains (:attr:`Claim.runs`)."""
    return [(run_overrides(setup, n), sd) for setup, sd, n in _runs(s, seeds)]


def _timescale_window(metric_rows, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 5's criterion (module doc) on the checkpoint series ``metric_rows(setup, n, seed, out)`` of each run."""
    setups = _setups(s)
    times = {}
    for setup, seed, n in progress_bar(_runs(s, seeds), 5, progress):
        times[setup["name"], seed, n] = run_times(metric_rows(setup, n, seed, out))
    conditions, numbers, values, regimes = [], {}, [], []
    fig, axes = new_figure(len(setups), figsize=(5 * len(setups), 4))
    for ax, setup in zip(np.atleast_1d(axes), setups):
        rows = [{"n": n, "seed": sd, **times[setup["name"], sd, n]} for sd in seeds for n in setup["sizes"]]
        regimes += [_regime_row(setup, r["seed"], r["n"], r) for r in rows]
        label = setup["name"].split(", ")[-1] if len(setups) > 1 else ""
        conds, nums = window_conditions(rows, label, seeds[0])
        conditions += conds
        numbers[setup["name"]] = nums | {"runs": rows}
        values.append(f"{setup['name']}: slope tau_mem {fmt(conds[0].value)}, tau_gen {fmt(conds[1].value)}, "
                      f"mean log(tau_mem/tau_gen) {fmt(conds[2].value)} (censored: {nums['censored']} of "
                      f"{nums['runs']} runs)")
        _plot_times(ax, rows, setup["steps"], setup["name"])
    save_figure(fig, out, log_x=False)
    return Outcome(conditions, "; ".join(values), "claim.png", numbers, regimes)


def _plot_times(ax, rows: list, budget: float, title: str) -> None:
    """tau_mem (censored runs drawn at the ``budget``, a dashed line when finite) and tau_gen against n."""
    n = np.asarray([r["n"] for r in rows], dtype=np.float64)
    mem = np.asarray([r["tau_mem"] for r in rows], dtype=np.float64)
    ax.plot(n[np.isfinite(mem)], mem[np.isfinite(mem)], "o", label="tau_mem")
    ax.plot(n[~np.isfinite(mem)], np.full((~np.isfinite(mem)).sum(), budget), "^", mfc="none",
            label="censored (at the budget)")
    ax.plot(n, [r["tau_gen"] for r in rows], "s", label="tau_gen")
    if math.isfinite(budget):
        ax.axhline(budget, color="0.5", lw=0.7, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training points n")
    ax.set_ylabel("training steps")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def _network_rows(setup: dict, n: int, seed: int, out: Path) -> list:
    return read_metrics(trained(out.parent / "runs", run_overrides(setup, n), seed))


def _copier_rows(setup: dict, n: int, seed: int, out: Path) -> list:
    """The metrics of the run's measurement (same probes, sampling noise and metrics) of the empirical denoiser of
    its n training points, repeated at every checkpoint of its grid: a network that has memorized from step one."""
    cfg = run_config(run_overrides(setup, n), seed)
    data = load_training_data(cfg, "cpu")
    row = Measurement.from_config(cfg.measure, data.data, METRICS, data.train_index)(EmpiricalDenoiser(data.y.float()))
    t = cfg.train
    grid = checkpoint_steps(t.steps, per_decade=t.checkpoints_per_decade, first=t.first_checkpoint)
    return [{**row, "step": step} for step in grid]


def timescale_window(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _timescale_window(_network_rows, s, out, seeds, progress)


def timescale_window_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the empirical denoiser of each run's training set at every checkpoint."""
    return _timescale_window(_copier_rows, s, out, seeds, progress)


def timescale_window_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: the RF model's closed-form training at psi_n = n/d ∝ n (settings ``rf``), judged by
    :func:`window_conditions`."""
    rf = s["rf"]
    rows = [r | {"n": r["psi_n"] * rf["d"]} for r in _rf_rows(rf, seeds)]
    conds, nums = window_conditions(rows, "", seeds[0])
    fig, ax = new_figure()
    _plot_times(ax, rows, math.inf, f"RF model, psi_p = {rf['psi_p']:g}, d = {rf['d']}")
    save_figure(fig, out, log_x=False)
    return Outcome(conds, f"RF: slope tau_mem {fmt(conds[0].value)}, tau_gen {fmt(conds[1].value)}, mean "
                   f"log(tau_mem/tau_gen) {fmt(conds[2].value)}", "claim.png", nums | {"runs": rows})


# ---- claim 6

@lru_cache(maxsize=4)
def _theory(psi_p: float, psi_n: float, covariance: str):
    """The saddle-point spectrum of U (tanh, t = :data:`RF_T`) for one covariance of :data:`rf_spectrum.SIGMAS`."""
    sigma, weights = rf_spectrum.SIGMAS[covariance]
    return solve_spectrum(psi_p, psi_n, RF_T, sigma=sigma, weights=weights)


@lru_cache(maxsize=32)
def _eigenvalues(psi_p: float, psi_n: float, d: int, covariance: str, matrices: str, seed: int) -> np.ndarray:
    """Eigenvalues of U (``matrices``: ``'ge'`` Gaussian-equivalent, ``'exact'`` the true U) for one covariance."""
    sigma, weights = rf_spectrum.SIGMAS[covariance]
    prob = rf_problem(psi_p, psi_n, d, RF_T, seed=seed, matrices=matrices, sigma=sigma, weights=weights)
    U = (gaussian_equivalent_U(prob["W"], prob["X"], prob["constants"], seed=seed + 1) if matrices == "ge"
         else prob["losses"].U)
    return np.linalg.eigvalsh(U)


def _spectrum_judged(slots: dict, psi_n_theory: float, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 6's criterion (module doc): ``slots`` maps ``'ge'`` and ``'true'`` to ``(d, matrices)`` of the
    eigenvalues compared there, against the theory at ``psi_n_theory``."""
    names = {("ge", "identity"): "(a)", ("ge", "two-eigenvalue"): "(b)", ("true", "identity"): "(c)",
             ("true", "two-eigenvalue"): "(d)"}
    ks, sizes = {k: [] for k in names}, {}
    for seed in progress_bar(seeds, 6, progress):
        for (slot, cov) in names:
            d, matrices = slots[slot]
            ev = _eigenvalues(s["psi_p"], s["psi_n"], d, cov, matrices, seed)
            sp = _theory(s["psi_p"], psi_n_theory, cov)
            drop = slot == "true"
            ks[slot, cov].append(ks_distance(ev, sp, drop_delta=drop))
            sizes[slot] = ev.size - (round(sp.delta_mass * ev.size) if drop else 0)
    conditions = []
    for (slot, cov), name in names.items():
        what = "Gaussian-equivalent U" if slot == "ge" else "true U (continuous part)"
        d, matrices = slots[slot]
        text = (f"KS(theory, eigenvalues of the {what} ({matrices}, d = {d})), Sigma {cov}, within the 95% bound of "
                f"m = {sizes[slot]} independent draws")
        conditions.append(Condition(name, text, *seed_mean([[v] for v in ks[slot, cov]], seed=seeds[0]),
                                    low=0.0, high=1.36 / math.sqrt(sizes[slot])))
    _plot_spectra(slots, psi_n_theory, s, out, seeds[0], ks)
    worst = {slot: max(np.mean(v) for (sl, _), v in ks.items() if sl == slot) for slot in slots}
    return Outcome(conditions, f"KS(theory, eigenvalues) worst of both covariances: {fmt(worst['ge'])} "
                   f"(Gaussian-equivalent), {fmt(worst['true'])} (true U, continuous part)", "rf_spectrum.png",
                   {f"ks_{slot}_{cov}": v for (slot, cov), v in ks.items()} | {"m": sizes})


def _plot_spectra(slots: dict, psi_n_theory: float, s: dict, out: Path, seed: int, ks: dict) -> None:
    """:func:`figures.rf_spectrum.plot` of the first seed's eigenvalues against the theory."""
    results = {}
    for cov in rf_spectrum.SIGMAS:
        results[cov] = {"spectrum": _theory(s["psi_p"], psi_n_theory, cov),
                        **{slot: _eigenvalues(s["psi_p"], s["psi_n"], slots[slot][0], cov, slots[slot][1], seed)
                           for slot in ("ge", "true")},
                        "ks_ge": ks["ge", cov][0], "ks_true_continuous": ks["true", cov][0]}
    rf_spectrum.plot(results, out / "rf_spectrum.png", psi_p=s["psi_p"], psi_n=psi_n_theory, t=RF_T,
                     d_ge=slots["ge"][0], d_true=slots["true"][0])


def spectrum(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    slots = {"ge": (s["d_ge"], "ge"), "true": (s["d_true"], "exact")}
    return _spectrum_judged(slots, s["psi_n"], s, out, seeds, progress)


def spectrum_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: Gaussian-equivalent matrices of twice d_ge in both slots."""
    slots = {"ge": (2 * s["d_ge"], "ge"), "true": (2 * s["d_ge"], "ge")}
    return _spectrum_judged(slots, s["psi_n"], s, out, seeds, progress)


def spectrum_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the theory at twice the matrices' psi_n."""
    slots = {"ge": (s["d_ge"], "ge"), "true": (s["d_true"], "exact")}
    return _spectrum_judged(slots, 2 * s["psi_n"], s, out, seeds, progress)


# ---- claim 7

def _rf_window(transform, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 7's criterion (module doc) on the RF runs' times after ``transform(rows) -> rows``."""
    rows = transform(_rf_rows(s, seeds))
    fits = _fits([r["psi_n"] for r in rows], rows, seeds[0])
    conds = [_slope_condition("(a)", "log-log slope of tau_mem against psi_n is about 1", fits["tau_mem"], 0.8, 1.2),
             _slope_condition("(b)", "log-log slope of tau_gen against psi_n is about 0", fits["tau_gen"], -0.2, 0.2)]
    fig, ax = new_figure()
    for key, mk in (("tau_mem", "o"), ("tau_gen", "s")):
        ax.plot([r["psi_n"] for r in rows], [r[key] for r in rows], mk, mfc="none",
                label=f"{key}: slope {fmt(fits[key]['slope'])} "
                      f"{fmt_interval(fits[key]['slope_boot_lo'], fits[key]['slope_boot_hi'])}")
    ax.set_yscale("log")
    ax.set_title(f"RF model (Gaussian-equivalent U), psi_p = {s['psi_p']:g}, d = {s['d']}, t = {RF_T:g}", fontsize=9)
    save_figure(fig, out, xlabel="psi_n = n / d", ylabel="time tau = steps x lr / d^2")
    return Outcome(conds, f"log-log slope tau_mem {fmt(conds[0].value)}, tau_gen {fmt(conds[1].value)}", "claim.png",
                   {"fit_tau_mem": fits["tau_mem"], "fit_tau_gen": fits["tau_gen"], "runs": rows})


def with_trends(rows: list, slopes: dict) -> list:
    """``rows`` with ``log tau_k`` replaced by ``slopes[k] log psi_n + a_k + r_i``: the least-squares line's
    intercept ``a_k`` and the runs' residuals ``r_i`` about it kept, its slope set to ``slopes[k]`` (the least-squares
    slope of the result is exactly ``slopes[k]``, since residuals are orthogonal to ``log psi_n``)."""
    lx = np.log([r["psi_n"] for r in rows])
    out = [dict(r) for r in rows]
    for key, slope in slopes.items():
        ly = np.log([r[key] for r in rows])
        b, a = np.polyfit(lx, ly, 1)
        for r, y in zip(out, slope * lx + a + (ly - a - b * lx)):
            r[key] = float(np.exp(y))
    return out


def rf_window(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _rf_window(lambda rows: rows, s, out, seeds, progress)


def rf_window_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: the runs' times with their trends set to slope 1 (tau_mem) and 0 (tau_gen)."""
    return _rf_window(lambda rows: with_trends(rows, {"tau_mem": 1.0, "tau_gen": 0.0}), s, out, seeds, progress)


def rf_window_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: tau_mem and tau_gen swapped."""
    return _rf_window(lambda rows: [r | {"tau_mem": r["tau_gen"], "tau_gen": r["tau_mem"]} for r in rows],
                      s, out, seeds, progress)


_RF_QUICK = dict(d=10, psi_p=32.0, psi_ns=(1.5, 2.0, 3.0, 4.0, 6.0))

CLAIMS = [
    Claim(5, PAPER, "two training time scales: tau_gen independent of n, tau_mem ∝ n, with a window between",
          "tau_mem ∝ n (slope 1), tau_gen flat",
          {"quick": dict(data_sets=(dict(name="gmm", d=4, n_val=256),), sizes=(2, 4, 8), steps=300, batch_max=2,
                         samples=64, rf=_RF_QUICK),
           "cpu": dict(data_sets=(dict(name="digits"), dict(name="mondrian", params=dict(size=8, n=1128), width=256,
                                                             sizes=(16, 32, 64, 128, 256))),
                       sizes=(16, 32, 64, 128), steps=6000, batch_max=16, samples=256, rf=_RF_QUICK),
           "paper": dict(data_sets=(dict(name="gmm", d=32, n_val=2000),), sizes=(64, 128, 256, 512, 1024),
                         steps=200000, batch_max=512, samples=10000,
                         rf=dict(d=50, psi_p=32.0, psi_ns=(1.5, 2.0, 3.0, 4.0, 6.0, 8.0)))},
          timescale_window,
          Control("the RF model's closed-form training at psi_n ∝ n (psi_p = 32)", timescale_window_positive),
          Control("the empirical denoiser of each run's training set at every checkpoint", timescale_window_negative),
          planned_runs),
    Claim(6, PAPER, "the spectrum of U (RF model) has the predicted two bulks: theory matches the matrices",
          "density from the saddle-point equations",
          {"quick": dict(psi_p=4.0, psi_n=1.0, d_ge=40, d_true=20),
           "cpu": dict(psi_p=4.0, psi_n=1.0, d_ge=400, d_true=200),
           "paper": dict(psi_p=4.0, psi_n=1.0, d_ge=1000, d_true=400)}, spectrum,
          Control("Gaussian-equivalent matrices of twice d_ge in both slots", spectrum_positive),
          Control("the theory at twice the matrices' psi_n", spectrum_negative)),
    Claim(7, PAPER, "RF model: tau_mem ∝ psi_n while tau_gen does not depend on psi_n",
          "tau_mem ∝ psi_n, tau_gen flat",
          {"quick": _RF_QUICK,
           "cpu": dict(d=50, psi_p=32.0, psi_ns=(1.5, 2.0, 3.0, 4.0, 6.0, 8.0)),
           "paper": dict(d=100, psi_p=32.0, psi_ns=(1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0))}, rf_window,
          Control("the same runs with their trends set to the claim's (slope 1 and 0, the measured scatter kept)",
                  rf_window_positive),
          Control("tau_mem and tau_gen swapped", rf_window_negative)),
]
