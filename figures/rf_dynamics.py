"""Training dynamics of the random-features score: closed form against simulated gradient descent.

Bonnaire et al.'s Fig. 5 (left), redone: train loss, test loss and score error against the training
time ``tau = steps x lr / d^2`` for several psi_n = n/d at psi_p = p/d = 2 (tanh, t = 0.01, d = 50,
Sigma = I). Lines: the exact gradient-flow curves from one eigendecomposition of the true U (noise
expectations by Mehler quadrature; :class:`toymodels.rf.ClosedForm`). Markers: gradient descent with
fresh noise every step at the authors' step (``dtau = 1e-2 psi_p / Delta_t``), its losses evaluated
exactly at 40 times; dotted: Adam (lr 1e-3 on A, same steps) for one psi_n. The gap between markers
and lines at the same tau is the excess loss of the noise in the gradient (it shrinks in proportion
to dtau); the generalization dip (tau_gen) does not move with psi_n, the rise of the test loss
(memorization) comes later for larger psi_n.

Run: ``python -m figures.rf_dynamics --out DIR`` (writes ``rf_dynamics.png``, ``curves.csv``,
``simulation.csv``, ``summary.json``, ``record.json``). ``memgen rf-dynamics`` runs the same code with
the activation, Sigma, matrices (true U or its Gaussian equivalent), ridge and simulation of the user's
choice.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.records import Records
from figures.script_args import figure_parser
from memgen.run_files import atomic_save_figure, atomic_write_json, write_record
from toymodels.rf import crossing_times, relaxation_times, simulate
from toymodels.rf.problems import log_times, loss_curves, rf_problem

KEYS = ("train", "test", "score_error")


def compute(*, psi_p: float = 2.0, psi_ns=(0.5, 1.0, 2.0, 4.0), d: int = 50, t: float = 0.01,
            tau_max: float = 1e7, num: int = 400, sim_tau_max: float = 2e4, adam_psi_n: float | None = 1.0,
            adam_lr: float = 1e-3, activation: str = "tanh", sigma=(1.0,), weights=None, matrices: str = "exact",
            ridge: float = 0.0, simulate_gd: bool = True, dtau: float | None = None, seed: int = 0) -> dict:
    """Closed-form curves at ``num`` times up to ``tau_max`` (and infinity), simulations (gradient descent
    when ``simulate_gd``, Adam at ``adam_psi_n``) and time scales for each psi_n."""
    tau = np.append(log_times(tau_max, num), np.inf)
    sim_tau = np.geomspace(1.0, sim_tau_max, 40)
    kw = dict(activation=activation, sigma=sigma, weights=weights)
    out = {}
    for psi_n in psi_ns:
        prob = rf_problem(psi_p, psi_n, d, t, seed=seed, matrices=matrices, **kw)
        curves = loss_curves(prob, tau, ridge=ridge)
        r = {"problem": prob, "curves": curves, "measured": crossing_times(curves),
             "predicted": relaxation_times(psi_p, psi_n, t, **kw)}
        if simulate_gd:
            gd = simulate(prob["X"], prob["W"], t, tau=sim_tau, activation=activation, dtau=dtau, ridge=ridge,
                          seed=seed, evaluate=prob["losses"], progress=False)
            at_sim = loss_curves(prob, gd["tau"], ridge=ridge)
            r.update(gd=gd, gd_minus_closed={k: float(np.max(np.abs(gd[k] - at_sim[k]))) for k in KEYS})
        if adam_psi_n is not None and psi_n == adam_psi_n:
            r["adam"] = simulate(prob["X"], prob["W"], t, tau=sim_tau, activation=activation, optimizer="adam",
                                 adam_lr=adam_lr, ridge=ridge, seed=seed, evaluate=prob["losses"], progress=False)
        out[psi_n] = r
    return out


def plot(results: dict, path, *, psi_p, d, t, adam_lr, activation: str = "tanh", sigma=(1.0,),
         matrices: str = "exact") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for i, (psi_n, r) in enumerate(results.items()):
        c, gd = r["curves"], r.get("gd")
        for ax, key in zip(axes, KEYS):
            ax.plot(c["tau"][1:-1], c[key][1:-1], color=f"C{i}", lw=1.5, label=f"psi_n = {psi_n:g}: closed form")
            if gd is not None:
                ax.plot(gd["tau"], gd[key], "o", ms=3.5, color=f"C{i}", mfc="none",
                        label=f"psi_n = {psi_n:g}: GD, dtau = {gd['dtau']:.3g}")
            if "adam" in r:
                ax.plot(r["adam"]["tau"], r["adam"][key], ":", color=f"C{i}", lw=2,
                        label=f"psi_n = {psi_n:g}: Adam, lr {adam_lr:g} (tau = steps x dtau)")
            ax.axvline(r["measured"]["tau_mem"], color=f"C{i}", ls="--", lw=0.7, alpha=0.6)
    titles = {"train": "train loss", "test": "test loss", "score_error": "score error (1/d) E|s_A - grad log P_t|^2"}
    for ax, key in zip(axes, KEYS):
        ax.set_xscale("log")
        ax.set_yscale("linear" if key == "train" else "log")
        ax.set_xlabel("training time tau = steps x lr / d^2")
        ax.set_ylabel(titles[key])
        ax.set_title(titles[key], fontsize=10)
    axes[0].legend(fontsize=6.5, loc="lower left")
    fig.suptitle(f"RF score, exact dynamics ({matrices} U) vs simulation: psi_p = {psi_p:g}, d = {d}, t = {t:g}, "
                 f"{activation}, Sigma eigenvalues {list(sigma)}"
                 " (dashed: measured tau_mem, half of the final test-train gap)", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=120)
    plt.close(fig)


def make(out, *, psi_p: float = 2.0, psi_ns=(0.5, 1.0, 2.0, 4.0), d: int = 50, t: float = 0.01,
         sim_tau_max: float = 2e4, adam_lr: float = 1e-3, seed: int = 0, command: str = "python -m figures.rf_dynamics",
         **options) -> dict:
    """Compute (``options``: the other arguments of :func:`compute`), plot and write everything into ``out``;
    returns the summary."""
    out = Path(out)
    results = compute(psi_p=psi_p, psi_ns=psi_ns, d=d, t=t, sim_tau_max=sim_tau_max, adam_lr=adam_lr, seed=seed,
                      **options)
    plot(results, out / "rf_dynamics.png", psi_p=psi_p, d=d, t=t, adam_lr=adam_lr,
         **{k: options[k] for k in ("activation", "sigma", "matrices") if k in options})
    Records({"psi_n": psi_n, "tau": tau, **{k: r["curves"][k][j] for k in KEYS}}
            for psi_n, r in results.items() for j, tau in enumerate(r["curves"]["tau"])).to_csv(out / "curves.csv")
    Records({"psi_n": psi_n, "optimizer": name, "tau": tau, **{k: r[name][k][j] for k in KEYS}}
            for psi_n, r in results.items() for name in ("gd", "adam") if name in r
            for j, tau in enumerate(r[name]["tau"])).to_csv(out / "simulation.csv")
    summary = {f"{psi_n:g}": {"p": r["problem"]["p"], "n": r["problem"]["n"], "measured": r["measured"],
                              "predicted": r["predicted"], "final": {k: float(r["curves"][k][-1]) for k in KEYS},
                              **({"gd_dtau": r["gd"]["dtau"], "gd_minus_closed_max": r["gd_minus_closed"]}
                                 if "gd" in r else {})}
               for psi_n, r in results.items()}
    atomic_write_json(out / "summary.json", summary)
    write_record(out, command=command, seed=seed,
                 config={"psi_p": psi_p, "psi_ns": list(psi_ns), "d": d, "t": t, "sim_tau_max": sim_tau_max,
                         "adam_lr": adam_lr, "activation": "tanh", "sigma": [1.0], **options})
    return summary


def main(argv=None) -> int:
    p = figure_parser("rf_dynamics", __doc__)
    p.add_argument("--psi-p", type=float, default=2.0)
    p.add_argument("--psi-n", type=lambda s: tuple(float(v) for v in s.split(",")), default=(0.5, 1.0, 2.0, 4.0))
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--t", type=float, default=0.01)
    p.add_argument("--sim-tau-max", type=float, default=2e4)
    a = p.parse_args(argv)
    report(make(a.out, psi_p=a.psi_p, psi_ns=a.psi_n, d=a.d, t=a.t, sim_tau_max=a.sim_tau_max, seed=a.seed), a.out)
    return 0


def report(summary: dict, out) -> None:
    """One line per psi_n: measured and predicted time scales (and the simulation's distance to the closed form)."""
    for psi_n, s in summary.items():
        m, pr = s["measured"], s["predicted"]
        gd = s.get("gd_minus_closed_max")
        print(f"psi_n = {psi_n}: measured tau_gen {m['tau_gen']:.3g}, tau_mem {m['tau_mem']:.4g};"
              f" spectrum tau_gen {pr['tau_gen']:.3g}, tau_mem {pr['tau_mem']:.4g}"
              + ("" if gd is None else "; max |GD - closed form|: " + ", ".join(f"{k} {v:.3g}" for k, v in gd.items())))
    print(f"wrote {out}/")


if __name__ == "__main__":
    raise SystemExit(main())
