"""``memgen rf-spectrum`` and ``memgen rf-dynamics``: the random-features theory from the command line.

    memgen rf-spectrum --psi-p 4 --psi-n 1 --t 0.01 --sigma 0.5,1.5 --out DIR
        solves the saddle point for the spectral density of U (delta peak, bulks, edges, masses,
        tau_gen/tau_mem) and compares it with the eigenvalues of the Gaussian-equivalent U (--d > 0)
        and of the true U (--true). Writes spectrum.png, density.csv, eigenvalues.csv, spectrum.json.
    memgen rf-dynamics --psi-p 2 --psi-n 0.5,1,2,4 --d 50 --t 0.01 --out DIR [--simulate]
        train loss, test loss and score error at every tau from one eigendecomposition of U
        (tau = steps x lr / d^2), their measured time scales against the spectrum's, and optionally
        simulated gradient descent with fresh noise. Writes dynamics.png, curves.csv, summary.json.
"""
from __future__ import annotations

import argparse
import time


def _floats(text: str) -> tuple:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def _common(p) -> None:
    p.add_argument("--psi-p", type=float, default=2.0, help="p/d, features per dimension (default 2)")
    p.add_argument("--t", type=float, default=0.01, help="OU diffusion time of the model (default 0.01)")
    p.add_argument("--activation", default="tanh", choices=("tanh", "relu", "erf"), help="activation (default tanh)")
    p.add_argument("--sigma", type=_floats, default=(1.0,), help="eigenvalues of Sigma, e.g. 0.5,1.5 (default 1)")
    p.add_argument("--weights", type=_floats, default=None, help="their fractions (default equal)")
    p.add_argument("--seed", type=int, default=0, help="seed of W, the data and Omega (default 0)")
    from memgen.cli import out_folder  # refuses a file as --out before any work (issue 11 §5)

    p.add_argument("--out", type=out_folder, default="memgen-out/rf", help="output folder (default memgen-out/rf)")


def _csv(path, header: list, columns: list) -> None:
    import numpy as np

    from memgen.runs import atomic_write_text

    rows = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    lines = [",".join(header)] + [",".join(f"{v:.10g}" for v in row) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def run_spectrum(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np

    from memgen.runs import atomic_save_figure, atomic_write_json, write_record
    from toymodels.rf import gaussian_equivalent_U, solve_spectrum
    from toymodels.rf.problems import rf_problem
    from toymodels.rf.spectrum import ks_distance

    t0 = time.perf_counter()
    out = Path(args.out)
    sp = solve_spectrum(args.psi_p, args.psi_n, args.t, activation=args.activation, sigma=args.sigma,
                  weights=args.weights, num=args.num)
    summary = sp.as_dict()
    empirical = {}
    if args.d > 0:
        prob = rf_problem(args.psi_p, args.psi_n, args.d, args.t, activation=args.activation, sigma=args.sigma,
                          weights=args.weights, seed=args.seed, matrices="exact" if args.true else "ge")
        empirical["Gaussian-equivalent U"] = np.linalg.eigvalsh(
            gaussian_equivalent_U(prob["W"], prob["X"], prob["constants"], seed=args.seed + 1))
        if args.true:
            empirical["true U"] = np.linalg.eigvalsh(prob["losses"].U)
        summary["empirical"] = {k: {"d": args.d, "p": prob["p"], "n": prob["n"], "ks": ks_distance(v, sp)}
                                for k, v in empirical.items()}
    _csv(out / "density.csv", ["lambda", "density"], [sp.lam, sp.density])
    for name, ev in empirical.items():
        _csv(out / f"eigenvalues_{name.split()[0].lower()}.csv", ["eigenvalue"], [ev])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sp.lam, sp.density, "k-", lw=1.5, label="theory (continuous part)")
    edges = np.geomspace(sp.lam[0], sp.lam[-1], 80)
    for name, ev in empirical.items():
        keep = ev > sp.delta_location * (1 + 1e-6)
        hist, _ = np.histogram(ev[keep], bins=edges)
        ax.stairs(hist / (ev.size * np.diff(edges)), edges, label=f"{name} (d = {args.d})", alpha=0.8)
    ax.axvline(sp.delta_location, color="r", ls=":", label=f"delta peak at s_t^2, mass {sp.delta_mass:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue lambda of U")
    ax.set_ylabel("density rho(lambda)")
    ax.set_title(f"spectrum of U: psi_p = {args.psi_p:g}, psi_n = {args.psi_n:g}, t = {args.t:g}, "
                 f"{args.activation}, Sigma eigenvalues {list(args.sigma)}", fontsize=9)
    ax.legend(fontsize=8)
    atomic_save_figure(fig, out / "spectrum.png", dpi=130, bbox_inches="tight")
    plt.close(fig)
    atomic_write_json(out / "spectrum.json", summary)
    write_record(out, command="memgen rf-spectrum", seed=args.seed, config=vars(args) | {"run": None})
    print(f"delta mass {sp.delta_mass:.4f} at s_t^2 = {sp.delta_location:.4g}; total mass {sp.total_mass:.6f}")
    for b in sp.bulks:
        print(f"bulk [{b.lo:.4g}, {b.hi:.4g}]  mass {b.mass:.4f}")
    print(f"tau_gen = {sp.tau_gen:.4g}, tau_mem = {sp.tau_mem:.4g} (tau = steps x lr / d^2)")
    for name, e in summary.get("empirical", {}).items():
        print(f"KS distance to the {name}: {e['ks']:.4f}")
    print(f"wrote {out}/ in {time.perf_counter() - t0:.1f} s")
    return 0


def run_dynamics(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np

    from memgen.runs import atomic_save_figure, atomic_write_json, write_record
    from toymodels.rf import measure_timescales, simulate, timescales
    from toymodels.rf.problems import log_times, loss_curves, rf_problem

    t0 = time.perf_counter()
    out = Path(args.out)
    tau = np.append(log_times(args.tau_max, args.num), np.inf)
    keys = ("train", "test", "score_error")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    header, columns, summary = ["psi_n", "tau", *keys], [], {}
    for i, psi_n in enumerate(args.psi_n):
        prob = rf_problem(args.psi_p, psi_n, args.d, args.t, activation=args.activation, sigma=args.sigma,
                          weights=args.weights, seed=args.seed, matrices=args.matrices)
        curves = loss_curves(prob, tau, ridge=args.ridge)
        measured = measure_timescales(curves)
        predicted = timescales(args.psi_p, psi_n, args.t, activation=args.activation, sigma=args.sigma,
                               weights=args.weights)
        summary[f"{psi_n:g}"] = {"measured": measured, "predicted": predicted, "p": prob["p"], "n": prob["n"],
                                 "final": {k: curves[k][-1] for k in keys}}
        color = f"C{i}"
        sim = None
        if args.simulate:
            sim_tau = np.geomspace(1.0, args.sim_tau_max, 40)
            sim = simulate(prob["X"], prob["W"], args.t, tau=sim_tau, activation=args.activation, dtau=args.dtau,
                           ridge=args.ridge, seed=args.seed, evaluate=prob["losses"], progress=False)
            summary[f"{psi_n:g}"]["simulation"] = {"dtau": sim["dtau"], "steps": int(sim["steps"][-1])}
        for ax, key in zip(axes, keys):
            ax.plot(tau[1:-1], curves[key][1:-1], color=color, label=f"psi_n = {psi_n:g} (closed form)")
            if sim is not None:
                ax.plot(sim["tau"], sim[key], "o", ms=3, color=color, label=f"psi_n = {psi_n:g} (simulated GD)")
        columns.append(np.column_stack([np.full(tau.size, psi_n), tau] + [curves[k] for k in keys]))
    for ax, key in zip(axes, keys):
        ax.set_xscale("log")
        ax.set_yscale("log" if key == "score_error" else "linear")
        ax.set_xlabel("training time tau = steps x lr / d^2")
        ax.set_ylabel(key.replace("_", " "))
    axes[0].legend(fontsize=7)
    fig.suptitle(f"RF score dynamics ({args.matrices} U): psi_p = {args.psi_p:g}, d = {args.d}, t = {args.t:g}, "
                 f"{args.activation}, Sigma {list(args.sigma)}", fontsize=10)
    fig.tight_layout()
    atomic_save_figure(fig, out / "dynamics.png", dpi=130)
    plt.close(fig)
    table = np.vstack(columns)
    _csv(out / "curves.csv", header, [table[:, j] for j in range(table.shape[1])])
    atomic_write_json(out / "summary.json", summary)
    write_record(out, command="memgen rf-dynamics", seed=args.seed, config=vars(args) | {"run": None})
    for psi_n, s in summary.items():
        m, pr = s["measured"], s["predicted"]
        print(f"psi_n = {psi_n}: tau_gen {m['tau_gen']:.4g} (spectrum {pr['tau_gen']:.4g}),"
              f" tau_mem {m['tau_mem']:.4g} (spectrum {pr['tau_mem']:.4g})")
    print(f"wrote {out}/ in {time.perf_counter() - t0:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("rf-spectrum", help="spectral density of the random-features matrix U",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--psi-n", type=float, default=1.0, help="n/d, training points per dimension (default 1)")
    p.add_argument("--num", type=int, default=400, help="points of the density curve (default 400)")
    p.add_argument("--d", type=int, default=200, help="dimension of the empirical U (0: theory only; default 200)")
    p.add_argument("--true", action="store_true", help="also the true U (exact noise expectations; slower)")
    p.set_defaults(run=run_spectrum)
    q = subparsers.add_parser("rf-dynamics", help="closed-form training curves of the random-features score",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(q)
    q.add_argument("--psi-n", type=_floats, default=(0.5, 1.0, 2.0, 4.0), help="n/d values (default 0.5,1,2,4)")
    q.add_argument("--d", type=int, default=50, help="data dimension (default 50)")
    q.add_argument("--matrices", default="exact", choices=("exact", "ge"), help="true U or its Gaussian equivalent")
    q.add_argument("--tau-max", type=float, default=1e7, help="last time of the curves (default 1e7)")
    q.add_argument("--num", type=int, default=400, help="times on the curves (default 400)")
    q.add_argument("--ridge", type=float, default=0.0, help="ridge weight (the authors' script: 1e-3; default 0)")
    q.add_argument("--simulate", action="store_true", help="also simulate gradient descent with fresh noise")
    q.add_argument("--sim-tau-max", type=float, default=1e4, help="last time of the simulation (default 1e4)")
    q.add_argument("--dtau", type=float, default=None, help="time per simulated step (default: the authors')")
    q.set_defaults(run=run_dynamics)
