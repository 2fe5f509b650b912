"""Bonnaire, Urfin, Biroli & Mézard's claims 5-7: tau_gen flat and tau_mem ∝ n in training; the RF theory.

Claim 5. Criterion (fixed before the run): over all runs and seeds, (a) the 95% bootstrap interval of the
log-log slope of tau_mem against n (first checkpoint where the replicate fraction reaches 0.1) overlaps
[0.8, 1.2]; (b) that of tau_gen overlaps 0; (c) the window exists: tau_gen < tau_mem in every run that
memorizes (some but not all: partial). tau_gen is :func:`compare.timescales.tau_gen`: the settling time of the
sliced Wasserstein distance to held-out data into 10% of its whole improvement before tau_mem (the first
checkpoint from which it stays within that band up to its best value, so an early dip is not a plateau).
Judged on every data set of the scale's ``data_sets`` (at cpu scale the residual MLP on scikit-learn's
digits and, at width 256, on 8x8 Mondrian images); all conditions met on every data set: reproduced.

Claim 6. Criterion: for both covariances of the figure, the Kolmogorov-Smirnov distance between the
theoretical spectrum of U and the eigenvalues of its Gaussian-equivalent matrix is at most 0.05 at
every seed (the interval over seeds lies in [0, 0.05]).

Claim 7. Criterion: in the RF model's closed-form training (Gaussian-equivalent U), the log-log slope of
tau_mem against psi_n has its 95% bootstrap interval overlapping [0.8, 1.2], and that of tau_gen
overlapping [-0.2, 0.2].
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.records import Records
from compare.timescales import timescales
from figures import rf_spectrum, rf_timescales
from figures.claims.timescale_runs import image_setup, mlp_setup, run_overrides

from .base import Claim, Outcome, loglog_fit, new_figure, progress_bar, save_figure, fmt, fmt_interval
from .networks import trained
from .verdicts import interval_check, verdict

PAPER = "Bonnaire et al."



def _setups(s: dict) -> list:
    """One set-up per data set of the scale (``data_sets``): Bonnaire et al.'s Gaussian mixture or an image set."""
    kw = dict(steps_per_n=s["steps_per_n"], batch_max=s["batch_max"], samples=s["samples"])
    return [mlp_setup(d["d"], s["sizes"], n_val=d["n_val"], **kw) if d["name"] == "gmm" else
            image_setup(d["name"], s["sizes"], params=d.get("params"), width=d.get("width"), **kw)
            for d in s["data_sets"]]


def _window_scores(rows, seed: int) -> tuple:
    """The fits of tau_mem and tau_gen against n, the fraction of memorizing runs with tau_gen < tau_mem,
    and the three condition scores of the criterion (module doc)."""
    fits = {key: loglog_fit(rows.column("n").astype(float), rows.column(key).astype(float), seed)
            for key in ("tau_mem", "tau_gen")}
    mem, gen = fits["tau_mem"], fits["tau_gen"]
    memorizing = [r for r in rows if np.isfinite(r["tau_mem"])]
    window = np.mean([r["tau_gen"] < r["tau_mem"] for r in memorizing]) if memorizing else float("nan")
    scores = [interval_check(mem["slope_boot_lo"], mem["slope_boot_hi"], low=0.8, high=1.2),
              interval_check(gen["slope_boot_lo"], gen["slope_boot_hi"], low=0.0, high=0.0),
              None if np.isnan(window) else (1.0 if window == 1 else 0.0 if window == 0 else 0.5)]
    return fits, window, scores


def timescale_window(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    setups = _setups(s)
    rows = Records()
    runs = [(setup, sd, n) for setup in setups for sd in seeds for n in setup["sizes"]]
    for setup, seed, n in progress_bar(runs, 5, progress):
        run = trained(out.parent / "runs", run_overrides(setup, n), seed)
        ts = timescales(run, quality=setup["quality"], memorization="replicate_fraction", threshold=0.1)
        rows.append({"data": setup["name"], "seed": seed, "n": n, "tau_mem": ts["tau_mem"], "tau_gen": ts["tau_gen"],
                     "run": str(run)})
    numbers, scores, values, intervals = {}, [], [], []
    fig, axes = new_figure(len(setups), figsize=(5 * len(setups), 4))
    for ax, setup in zip(np.atleast_1d(axes), setups):
        sub = rows.where(data=setup["name"])
        fits, window, sc = _window_scores(sub, seeds[0])
        mem, gen = fits["tau_mem"], fits["tau_gen"]
        never = int(np.isinf(sub.column("tau_mem").astype(float)).sum())     # left out of the fits
        scores += sc
        numbers[setup["name"]] = {"fit_tau_mem": mem, "fit_tau_gen": gen, "window_fraction": window, "scores": sc,
                                  "never_memorized": never}
        values.append(f"{setup['name']}: slope tau_mem {fmt(mem['slope'])}, tau_gen {fmt(gen['slope'])}; "
                      f"tau_gen < tau_mem in {fmt(100 * window)}% of memorizing runs"
                      + (f" (never memorized: {never} of {len(sub)} runs)" if never else ""))
        intervals.append(f"{fmt_interval(mem['slope_boot_lo'], mem['slope_boot_hi'])}; "
                         f"{fmt_interval(gen['slope_boot_lo'], gen['slope_boot_hi'])}")
        for key, mk in (("tau_mem", "o"), ("tau_gen", "s")):
            ax.plot(sub.column("n").astype(float), sub.column(key).astype(float), mk, label=key)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training points n")
        ax.set_ylabel("training steps")
        ax.set_title(setup["name"], fontsize=9)
    save_figure(fig, out)
    rows.to_csv(out / "timescales.csv")
    return Outcome("; ".join(values), " / ".join(intervals), verdict(scores), "claim.png",
                   {"per_data_set": numbers, "runs": list(rows), "scores": scores})


def spectrum(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    ks = []
    for k, seed in enumerate(progress_bar(seeds, 6, progress)):
        target = out if k == 0 else out / f"seed{seed}"
        summary = rf_spectrum.make(target, psi_p=s["psi_p"], psi_n=s["psi_n"], d_ge=s["d_ge"], d_true=s["d_true"],
                                   seed=seed)
        ks.append(max(v["ks_ge"] for v in summary.values()))
    scores = [interval_check(min(ks), max(ks), low=0.0, high=0.05, strict=True)]
    return Outcome(f"KS(theory, Gaussian-equivalent U) {fmt(np.mean(ks))} (worst of both covariances)",
                   fmt_interval(min(ks), max(ks)), verdict(scores), "rf_spectrum.png", {"ks_ge": ks, "scores": scores})


def rf_window(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    panel = {"name": f"Gaussian-equivalent U, psi_p = {s['psi_p']:g}", "psi_p": s["psi_p"], "matrices": "ge",
             "seeds": tuple(range(len(seeds))), "psi_ns": s["psi_ns"]}
    res = rf_timescales.compute(d=s["d"], panels=(panel,), seed=seeds[0])
    rf_timescales.plot(res, out / "claim.png", d=s["d"], t=0.01)
    mem, gen = res[0]["loglog_mem"], res[0]["loglog_gen"]
    scores = [interval_check(mem["slope_boot_lo"], mem["slope_boot_hi"], low=0.8, high=1.2),
              interval_check(gen["slope_boot_lo"], gen["slope_boot_hi"], low=-0.2, high=0.2)]
    return Outcome(f"log-log slope tau_mem {fmt(mem['slope'])}, tau_gen {fmt(gen['slope'])}",
                   f"{fmt_interval(mem['slope_boot_lo'], mem['slope_boot_hi'])}; "
                   f"{fmt_interval(gen['slope_boot_lo'], gen['slope_boot_hi'])}", verdict(scores), "claim.png",
                   {"loglog_mem": mem, "loglog_gen": gen, "rows": res[0]["rows"], "scores": scores})


CLAIMS = [
    Claim(5, PAPER, "two training time scales: tau_gen independent of n, tau_mem ∝ n, with a window between",
          "tau_mem ∝ n (slope 1), tau_gen flat",
          {"quick": dict(data_sets=(dict(name="gmm", d=4, n_val=256),), sizes=(2, 4, 8), steps_per_n=40,
                         batch_max=2, samples=64),
           "cpu": dict(data_sets=(dict(name="digits"), dict(name="mondrian", params=dict(size=8, n=1128), width=256)),
                       sizes=(16, 32, 64, 128), steps_per_n=100, batch_max=16, samples=256),
           "paper": dict(data_sets=(dict(name="gmm", d=32, n_val=2000),), sizes=(64, 128, 256, 512, 1024),
                         steps_per_n=400, batch_max=512, samples=10000)}, timescale_window),
    Claim(6, PAPER, "the spectrum of U (RF model) has the predicted two bulks: theory matches the matrices",
          "density from the saddle-point equations",
          {"quick": dict(psi_p=4.0, psi_n=1.0, d_ge=40, d_true=20), "cpu": dict(psi_p=4.0, psi_n=1.0, d_ge=400, d_true=200),
           "paper": dict(psi_p=4.0, psi_n=1.0, d_ge=1000, d_true=400)}, spectrum),
    Claim(7, PAPER, "RF model: tau_mem ∝ psi_n while tau_gen does not depend on psi_n",
          "tau_mem ∝ psi_n, tau_gen flat",
          {"quick": dict(psi_p=8.0, psi_ns=(1.0, 2.0, 4.0), d=10),
           "cpu": dict(psi_p=32.0, psi_ns=(1.5, 2.0, 3.0, 4.0, 6.0, 8.0), d=50),
           "paper": dict(psi_p=32.0, psi_ns=(1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0), d=100)}, rf_window),
]
