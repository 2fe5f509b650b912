"""Spectrum of the random-features matrix U: saddle-point theory against empirical eigenvalues.

Bonnaire et al.'s Fig. 4, redone: the density of U from the saddle-point equations
(:func:`toymodels.rf.spectrum`) against histograms of the eigenvalues of (a) the Gaussian-equivalent
``U_GE = G G^T/n + b_t^2 W W^T/d + s_t^2 I`` (d = 400 by default) and (b) the true U, whose noise
expectations are exact (Mehler quadrature, d = 200 by default), for Sigma = I and the two-eigenvalue
Sigma (half 0.5, half 1.5), tanh, t = 0.01, psi_p = 4, psi_n = 1: a delta peak at s_t^2 (mass
1 - (1 + psi_n)/psi_p, drawn as a line), a slow bulk and a fast bulk, in separate panels with
linear axes. Histograms are normalized by the number p of all eigenvalues, as the theory.
Each panel gives the Kolmogorov-Smirnov distance of the whole spectrum (GE) or of its continuous
part (true U: its delta peak is spread by O(s_t^2 / sqrt d)).

Run: ``python -m figures.rf_spectrum --out DIR`` (writes ``rf_spectrum.png``, ``density_*.csv``,
``eigenvalues_*.csv``, ``summary.json``, ``record.json``). ``memgen rf-spectrum`` runs the same code
for one Sigma, activation and size of the user's choice (``d_true = 0``: the Gaussian-equivalent U only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.records import Records
from figures.script_args import figure_parser
from memgen.run_files import atomic_save_figure, atomic_write_json, write_record
from toymodels.rf import gaussian_equivalent_U, solve_spectrum
from toymodels.rf.problems import rf_problem
from toymodels.rf.spectrum import continuous_density, ks_distance

SIGMAS = {"identity": ((1.0,), None), "two-eigenvalue": ((0.5, 1.5), (0.5, 0.5))}


def compute(*, psi_p: float = 4.0, psi_n: float = 1.0, t: float = 0.01, d_ge: int = 400, d_true: int = 200,
            sigmas: dict = SIGMAS, activation: str = "tanh", seed: int = 0) -> dict:
    """Theory and the empirical spectra (Gaussian-equivalent U at ``d_ge``; true U at ``d_true``, 0: none)
    for each ``{name: (Sigma eigenvalues, their weights)}`` of ``sigmas``."""
    out = {}
    for name, (sigma, weights) in sigmas.items():
        kw = dict(activation=activation, sigma=sigma, weights=weights)
        sp = solve_spectrum(psi_p, psi_n, t, **kw)
        ge = rf_problem(psi_p, psi_n, d_ge, t, seed=seed, matrices="ge", **kw)
        ev_ge = np.linalg.eigvalsh(gaussian_equivalent_U(ge["W"], ge["X"], ge["constants"], seed=seed + 1))
        out[name] = {"spectrum": sp, "ge": ev_ge, "ks_ge": ks_distance(ev_ge, sp), "p_ge": ge["p"]}
        if d_true:
            true = rf_problem(psi_p, psi_n, d_true, t, seed=seed, matrices="exact", **kw)
            ev_true = np.linalg.eigvalsh(true["losses"].U)
            out[name].update(true=ev_true, ks_true_continuous=ks_distance(ev_true, sp, drop_delta=True),
                             ks_true=ks_distance(ev_true, sp), p_true=true["p"])
    return out


def plot(results: dict, path, *, psi_p, psi_n, t, d_ge, d_true, activation: str = "tanh") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4 if d_true else 2
    fig, axes = plt.subplots(len(results), cols, figsize=(4.25 * cols, 4.2 * len(results)), squeeze=False)
    for row, (name, r) in zip(axes, results.items()):
        sp = r["spectrum"]
        low, high = sp.bulks[0], sp.bulks[-1]
        panels = [("GE", r["ge"], d_ge, f"KS {r['ks_ge']:.4f}")]
        if d_true:
            panels.append(("true", r["true"], d_true, f"KS cont. {r['ks_true_continuous']:.3f}"))
        for col in range(cols):
            which, ev, d, ks = panels[col // 2]
            ax = row[col]
            slow = col % 2 == 0
            if slow:  # linear axes, density per unit lambda
                lo, hi = sp.delta_location * 0.8, low.hi + 0.08 * (low.hi - low.lo)
                grid = np.linspace(sp.delta_location * (1 + 1e-9), hi, 600)
                edges = np.linspace(lo, hi, 60)
            else:  # the fast bulk spans decades: log lambda, density per unit log lambda
                lo, hi = high.lo / 1.3, high.hi * 1.2
                grid = np.geomspace(lo, hi, 600)
                edges = np.geomspace(lo, hi, 50)
            dens, sol = continuous_density(grid, sp.model, delta_mass=sp.delta_mass)
            dens = np.where(sol["inside"], dens, 0.0)
            hist, _ = np.histogram(ev, bins=edges)
            if slow:
                hist_y, curve = hist / (ev.size * np.diff(edges)), dens
            else:
                hist_y, curve = hist / (ev.size * np.diff(np.log(edges))), grid * dens
                ax.set_xscale("log")
            ax.stairs(hist_y, edges, fill=True, alpha=0.35,
                      label=f"{'Gaussian-equivalent' if which == 'GE' else 'true'} U, d = {d}")
            ax.plot(grid, curve, "k-", lw=1.4, label="theory")
            if slow and sp.delta_mass > 0:
                ax.axvline(sp.delta_location, color="r", ls=":",
                           label=f"delta at s_t^2 = {sp.delta_location:.2e}, mass {sp.delta_mass:.2f}")
            ax.set_xlim(lo, hi)
            ax.set_ylim(0, 1.5 * max(curve.max(), 1e-12))
            ax.set_xlabel("eigenvalue lambda of U")
            ax.set_ylabel("rho(lambda)" if slow else "lambda rho(lambda)  (per unit log lambda)")
            ax.set_title(f"Sigma {name}: {'slow' if slow else 'fast'} bulk, {which} U ({ks})", fontsize=9)
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Spectrum of U ({activation}, t = {t:g}, psi_p = {psi_p:g}, psi_n = {psi_n:g}): saddle point vs"
                 " eigenvalues; histograms normalized by all p eigenvalues", fontsize=11)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)


def make(out, *, psi_p: float = 4.0, psi_n: float = 1.0, t: float = 0.01, d_ge: int = 400, d_true: int = 200,
         sigmas: dict = SIGMAS, activation: str = "tanh", seed: int = 0,
         command: str = "python -m figures.rf_spectrum") -> dict:
    """Compute, plot and write everything into ``out``; returns the summary."""
    out = Path(out)
    results = compute(psi_p=psi_p, psi_n=psi_n, t=t, d_ge=d_ge, d_true=d_true, sigmas=sigmas, activation=activation,
                      seed=seed)
    plot(results, out / "rf_spectrum.png", psi_p=psi_p, psi_n=psi_n, t=t, d_ge=d_ge, d_true=d_true,
         activation=activation)
    summary = {}
    for name, r in results.items():
        sp = r["spectrum"]
        Records({"lambda": x, "density": y} for x, y in zip(sp.lam, sp.density)).to_csv(out / f"density_{name}.csv")
        for kind in ("ge", "true") if d_true else ("ge",):
            Records({"eigenvalue": v} for v in r[kind]).to_csv(out / f"eigenvalues_{kind}_{name}.csv")
        summary[name] = {**sp.as_dict(), "ks_ge": r["ks_ge"]}
        if d_true:
            delta = r["true"][:round(sp.delta_mass * r["p_true"])] if sp.delta_mass > 0 else None
            summary[name].update(ks_true=r["ks_true"], ks_true_continuous=r["ks_true_continuous"],
                                 true_delta_spread={"mean": None if delta is None else float(np.mean(delta)),
                                                    "std": None if delta is None else float(np.std(delta))})
    atomic_write_json(out / "summary.json", summary)
    write_record(out, command=command, seed=seed,
                 config={"psi_p": psi_p, "psi_n": psi_n, "t": t, "d_ge": d_ge, "d_true": d_true,
                         "activation": activation, "sigmas": {k: list(v) for k, v in sigmas.items()}})
    return summary


def main(argv=None) -> int:
    p = figure_parser("rf_spectrum", __doc__)
    p.add_argument("--psi-p", type=float, default=4.0)
    p.add_argument("--psi-n", type=float, default=1.0)
    p.add_argument("--t", type=float, default=0.01)
    p.add_argument("--d-ge", type=int, default=400, help="dimension of the Gaussian-equivalent U")
    p.add_argument("--d-true", type=int, default=200, help="dimension of the true U")
    a = p.parse_args(argv)
    summary = make(a.out, psi_p=a.psi_p, psi_n=a.psi_n, t=a.t, d_ge=a.d_ge, d_true=a.d_true, seed=a.seed)
    report(summary, a.out)
    return 0


def report(summary: dict, out) -> None:
    """One line per Sigma: the delta peak, the bulks, the time scales and the KS distances."""
    for name, s in summary.items():
        print(f"Sigma {name}: delta {s['delta_mass']:.3f} at {s['delta_location']:.4g}; bulks "
              + ", ".join(f"[{b['lo']:.4g}, {b['hi']:.4g}] mass {b['mass']:.4f}" for b in s["bulks"])
              + f"; tau_gen {s['tau_gen']:.4g}, tau_mem {s['tau_mem']:.4g}; KS GE {s['ks_ge']:.4f}"
              + (f", KS true (continuous) {s['ks_true_continuous']:.4f}" if "ks_true" in s else ""))
    print(f"wrote {out}/")


if __name__ == "__main__":
    raise SystemExit(main())
