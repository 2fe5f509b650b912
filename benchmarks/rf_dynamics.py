"""Loss curves from the closed form against simulated gradient descent, measured in one run.

    python -m benchmarks.rf_dynamics [--out benchmarks/results/rf_dynamics.json] [--d 100]

Problem: the authors' setting at d = 100 (tanh, t = 0.01, psi_p = 2, psi_n = 1, Sigma = I, A_0 = 0).
Train loss, test loss and score error at 400 log-spaced times up to tau = 1e4 (tau = steps x lr / d^2):

* closed form: one eigendecomposition of U, then all 400 times (:class:`toymodels.rf.ClosedForm`);
* simulation: gradient descent with fresh noise every step at the authors' step
  (``dtau = 1e-2 psi_p / Delta_t``, about 1e4 steps to tau = 1e4), two seeds, the parameters recorded at
  the same 400 times and their losses evaluated exactly with the same matrices.

Both are timed given U and V (the exact Mehler computation of U, needed by both for exact losses,
is timed separately); the closed form as the best of 3 calls, the simulation once per seed. Agreement "within the simulation's noise": the noise in the gradient makes
``E L(A_k) = L(E A_k) + q(Cov A_k)`` (q the quadratic part of the loss); the closed form for the
same step size gives ``L(E A_k)`` exactly, so the residual ``mean_seeds L(A) - L_closed`` must match
the noise excess estimated from the two seeds alone, ``q((A_1 - A_2)/sqrt 2)``.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from benchmarks.empirical import best_time
from memgen.run_files import atomic_write_json, versions
from toymodels.rf import ClosedForm, simulate
from toymodels.rf.problems import rf_problem

KEYS = ("train", "test", "score_error")


def quadratic_part(losses, D: np.ndarray) -> dict:
    """The quadratic terms of the losses at ``D``: ``(Delta/d) Tr(D~ U D~^T)`` etc. (no constant or linear term)."""
    Dt = D / math.sqrt(losses.p)
    tr = np.sum((Dt @ losses.U) * Dt)
    te = np.sum((Dt @ losses.U_test) * Dt)
    return {"train": losses.delta / losses.d * tr, "test": losses.delta / losses.d * te, "score_error": te / losses.d}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rf_dynamics", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="write the table as JSON here")
    p.add_argument("--d", type=int, default=100, help="data dimension (default 100)")
    p.add_argument("--tau-max", type=float, default=1e4, help="last time (default 1e4)")
    a = p.parse_args(argv)
    t = 0.01
    t0 = time.perf_counter()
    prob = rf_problem(2.0, 1.0, a.d, t, seed=0)
    t_matrices = time.perf_counter() - t0
    L = prob["losses"]
    tau = np.geomspace(1.0, a.tau_max, 400)

    t_closed = best_time(lambda: ClosedForm(L).curves(tau))  # eigendecomposition + 400 times, best of 3
    flow = ClosedForm(L)
    closed = flow.curves(tau)

    runs, t_sim = [], []
    for seed in (1, 2):
        t0 = time.perf_counter()
        runs.append(simulate(prob["X"], prob["W"], t, tau=tau, seed=seed, progress=False))
        t_sim.append(time.perf_counter() - t0)
    dtau, steps = runs[0]["dtau"], runs[0]["steps"]
    exact = flow.curves(steps * dtau, discrete=True, dtau=dtau)  # L(E A_k) for this step size
    flow_at_steps = flow.curves(steps * dtau)
    sims = [{k: np.array([L(A)[k] for A in r["records"]]) for k in KEYS} for r in runs]
    noise = [quadratic_part(L, (A1 - A2) / math.sqrt(2)) for A1, A2 in zip(runs[0]["records"], runs[1]["records"])]
    table = {}
    for k in KEYS:
        mean = 0.5 * (sims[0][k] + sims[1][k])
        excess = np.array([n[k] for n in noise])
        resid = mean - exact[k]
        table[k] = {"max_abs_sim_minus_closed": float(np.max(np.abs(sims[0][k] - exact[k]))),
                    "max_abs_seed_difference": float(np.max(np.abs(sims[0][k] - sims[1][k]))),
                    "max_noise_excess_estimate": float(excess.max()),
                    "max_abs_residual_minus_noise_excess": float(np.max(np.abs(resid - excess))),
                    "max_abs_gradient_flow_minus_discrete": float(np.max(np.abs(flow_at_steps[k] - exact[k])))}
    out = {"d": a.d, "p": prob["p"], "n": prob["n"], "t": t, "tau_max": a.tau_max, "times": 400, "dtau": dtau,
           "steps": int(steps[-1]), "seconds_closed_form": t_closed, "seconds_simulation": float(np.mean(t_sim)),
           "speedup": float(np.mean(t_sim)) / t_closed, "seconds_exact_matrices": t_matrices,
           "speedup_including_matrices": float(np.mean(t_sim)) / (t_closed + t_matrices), "losses": table,
           "closed_form_at_tau_max": {k: float(closed[k][-1]) for k in KEYS}}
    print(f"d = {a.d}, p = {prob['p']}, n = {prob['n']}: {out['steps']} GD steps (dtau = {dtau:.4g})"
          f" to tau = {a.tau_max:g}")
    print(f"closed form {t_closed:.3f} s, simulation {out['seconds_simulation']:.2f} s: speedup {out['speedup']:.0f}x"
          f" ({out['speedup_including_matrices']:.0f}x counting the exact U, {t_matrices:.2f} s)")
    print(f"{'loss':<12} {'|sim-closed|':>13} {'|seed1-seed2|':>14} {'noise excess':>13} {'|resid-excess|':>15}")
    for k, r in table.items():
        print(f"{k:<12} {r['max_abs_sim_minus_closed']:>13.2e} {r['max_abs_seed_difference']:>14.2e}"
              f" {r['max_noise_excess_estimate']:>13.2e} {r['max_abs_residual_minus_noise_excess']:>15.2e}")
    if a.out:
        atomic_write_json(a.out, {**out, "versions": versions()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
