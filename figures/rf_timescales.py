"""Memorization and generalization times of the random-features score against psi_n = n/d.

Measured from the exact loss curves (:class:`toymodels.rf.ClosedForm`, one eigendecomposition per
problem): ``tau_gen``, the time at which the score error has made half its drop to its minimum, and
``tau_mem``, the time at which the test-train gap reaches half its final value
(:func:`toymodels.rf.crossing_times`). Predicted from the spectrum alone
(:func:`toymodels.rf.relaxation_times`): ``tau = psi_p / (2 Delta_t <lambda>)`` with the mean eigenvalue
of the highest ``min(n, d)/p`` (gen) and of the lowest ``d/p`` (mem) of the continuous spectrum, the
two groups of modes that carry V (a relaxation time; the half-way times measured are the same up to
an O(1) factor: about ln(2)/2 for the score error, about 1 for the gap).
Panel (a): the true U (exact noise expectations), psi_p = 8, d = 50, two seeds; panel (b): the
Gaussian-equivalent U, psi_p = 32, d = 50 (p = 1600). tanh, t = 0.01, Sigma = I.
The fits: ``tau_mem = a + b psi_n`` (least squares, 95% t-interval of the slope) and the log-log
exponent (1 for tau_mem ∝ psi_n) with :func:`compare.timescales.fit_tau_mem`; the horizontal line is
``tau_delta = psi_p / (2 Delta_t s_t^2)``, the bound that tau_mem approaches as the memorizing modes
sink onto s_t^2.

Run: ``python -m figures.rf_timescales --out DIR`` (writes ``rf_timescales.png``, ``timescales.csv``,
``summary.json``, ``record.json``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from compare.records import Records
from compare.timescales import fit_tau_mem
from figures.script_args import figure_parser
from memgen.progress import progress_bar
from memgen.run_files import atomic_save_figure, atomic_write_json, write_record
from toymodels.rf import crossing_times, relaxation_times
from toymodels.rf.problems import log_times, loss_curves, rf_problem

PANELS = (
    {"name": "true U, psi_p = 8", "psi_p": 8.0, "matrices": "exact", "seeds": (0, 1),
     "psi_ns": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)},
    {"name": "Gaussian-equivalent U, psi_p = 32", "psi_p": 32.0, "matrices": "ge", "seeds": (0,),
     "psi_ns": (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)},
)


def linear_fit(x, y, level: float = 0.95) -> dict:
    """``y = a + b x`` by least squares, with the Student-t interval of the slope."""
    fit = stats.linregress(np.asarray(x, float), np.asarray(y, float))
    half = stats.t.ppf((1 + level) / 2, len(x) - 2) * fit.stderr
    return {"slope": fit.slope, "intercept": fit.intercept, "slope_lo": fit.slope - half,
            "slope_hi": fit.slope + half, "r2": fit.rvalue ** 2, "level": level}


def compute(*, d: int = 50, t: float = 0.01, panels=PANELS, seed: int = 0) -> list:
    tau = np.append(log_times(1e9, 500), np.inf)
    out = []
    for panel in panels:
        rows = []
        for psi_n in progress_bar(panel["psi_ns"], desc=panel["name"], leave=False):
            pred = relaxation_times(panel["psi_p"], psi_n, t)
            for s in panel["seeds"]:
                prob = rf_problem(panel["psi_p"], psi_n, d, t, seed=seed + s, matrices=panel["matrices"])
                m = crossing_times(loss_curves(prob, tau))
                rows.append({"psi_n": psi_n, "seed": seed + s, **m, "pred_tau_gen": pred["tau_gen"],
                             "pred_tau_mem": pred["tau_mem"], "tau_delta": pred["tau_delta"]})
        x = np.array([r["psi_n"] for r in rows])
        mem = np.array([r["tau_mem"] for r in rows])
        gen = np.array([r["tau_gen"] for r in rows])
        pred = np.array([r["pred_tau_mem"] for r in rows])
        out.append({**panel, "rows": rows, "fit_mem": linear_fit(x, mem), "fit_gen": linear_fit(x, gen),
                    "fit_pred_mem": linear_fit(x, pred), "loglog_mem": fit_tau_mem(x, mem),
                    "loglog_gen": fit_tau_mem(x, gen), "ratio_measured_to_predicted": (mem / pred).tolist()})
    return out


def plot(results: list, path, *, d, t) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7.5 * len(results), 5), squeeze=False)
    for ax, r in zip(axes[0], results):
        x = np.array([row["psi_n"] for row in r["rows"]])
        for key, color, label in (("tau_mem", "C3", "tau_mem"), ("tau_gen", "C0", "tau_gen")):
            ax.plot(x, [row[key] for row in r["rows"]], "o", color=color, mfc="none",
                    label=f"{label} measured (loss curves)")
            xs = np.array(r["psi_ns"])
            pred = [next(row[f"pred_{key}"] for row in r["rows"] if row["psi_n"] == v) for v in xs]
            ax.plot(xs, pred, "-", color=color, lw=1.2, label=f"{label} predicted (spectrum)")
        f = r["fit_mem"]
        xs = np.linspace(min(x), max(x), 50)
        ax.plot(xs, f["intercept"] + f["slope"] * xs, "--", color="C3", lw=0.8,
                label=f"fit: slope {f['slope']:.3g} [{f['slope_lo']:.3g}, {f['slope_hi']:.3g}] per unit psi_n")
        ax.axhline(r["rows"][0]["tau_delta"], color="gray", ls=":", label="tau_delta = psi_p/(2 Delta_t s_t^2)")
        ax.set_yscale("log")
        ax.set_xlabel("psi_n = n / d")
        ax.set_ylabel("time tau = steps x lr / d^2")
        ll = r["loglog_mem"]
        ax.set_title(f"{r['name']}, d = {d}, t = {t:g}: log-log exponent of tau_mem {ll['slope']:.2f}"
                     f" [{ll['slope_lo']:.2f}, {ll['slope_hi']:.2f}]", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("RF score (tanh, Sigma = I): memorization time grows with n, generalization time does not",
                 fontsize=11)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def make(out, *, d: int = 50, t: float = 0.01, seed: int = 0) -> list:
    out = Path(out)
    results = compute(d=d, t=t, seed=seed)
    plot(results, out / "rf_timescales.png", d=d, t=t)
    Records({"panel": r["name"], **row} for r in results for row in r["rows"]).to_csv(out / "timescales.csv")
    atomic_write_json(out / "summary.json", [{k: v for k, v in r.items() if k != "rows"} for r in results])
    write_record(out, command="python -m figures.rf_timescales", seed=seed,
                 config={"d": d, "t": t, "panels": [{k: v for k, v in p.items()} for p in PANELS]})
    return results


def main(argv=None) -> int:
    p = figure_parser("rf_timescales", __doc__)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--t", type=float, default=0.01)
    a = p.parse_args(argv)
    for r in make(a.out, d=a.d, t=a.t, seed=a.seed):
        f, g, ll, pf = r["fit_mem"], r["fit_gen"], r["loglog_mem"], r["fit_pred_mem"]
        print(f"{r['name']}: tau_mem slope {f['slope']:.4g} [{f['slope_lo']:.4g}, {f['slope_hi']:.4g}] per unit psi_n"
              f" (R^2 {f['r2']:.3f}), log-log exponent {ll['slope']:.3f} [{ll['slope_lo']:.3f}, {ll['slope_hi']:.3f}];"
              f" predicted slope {pf['slope']:.4g};"
              f" tau_gen slope {g['slope']:.3g} [{g['slope_lo']:.3g}, {g['slope_hi']:.3g}]"
              f" (log-log {r['loglog_gen']['slope']:.3f}); measured/predicted tau_mem "
              + ", ".join(f"{v:.2f}" for v in r["ratio_measured_to_predicted"]))
    print(f"wrote {a.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
