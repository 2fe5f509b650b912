"""The whole spectral density of U at once against a per-lambda root finder, measured in one run.

    python -m benchmarks.rf_spectrum [--out benchmarks/results/rf_spectrum.json] [--num 400]

Baseline (the authors' approach, written here): for each lambda separately, docs/rf_theory.md's three
complex equations as six real ones in (q, r, s), solved by ``scipy.optimize.root(method='lm')`` at
``z = lambda - i eps`` with continuation in eps from 100 down to 1e-9 (the same geometric ladder as
ours), starting from ``q = r = s = -1/z``; density ``|Im q| / pi``.
Ours: :func:`toymodels.rf.stieltjes`, damped complex Newton on (q, r) for the whole grid at once.
Reported: wall times (ours: best of 3 calls; the baseline: one pass), their ratio (target >= 20), and
the largest density difference over the grid
(target <= 1e-6), for Sigma = I and the two-eigenvalue Sigma, tanh, t = 0.01, psi_p = 4, psi_n = 1.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import root

from benchmarks.empirical import best_time
from memgen.run_files import atomic_write_json, versions
from toymodels.rf import SpectrumModel, stieltjes


def baseline_density(lam: np.ndarray, model: SpectrumModel, *, eps_max: float, steps: int = 48,
                     eps_min: float = 1e-9) -> np.ndarray:
    """``|Im q|/pi`` per lambda by Levenberg-Marquardt with continuation in eps (one lambda at a time)."""
    k = model.constants
    pp, kap, al2 = model.psi_p, model.psi_p / model.psi_n, k.alpha2
    sig, w = np.asarray(model.sigma), np.asarray(model.weights)
    ladder = np.append(np.geomspace(eps_max, 10 * eps_min, steps - 1), eps_min)

    def equations(v, lam_i, eps):
        q, r, s = complex(v[0], v[1]), complex(v[2], v[3]), complex(v[4], v[5])
        z = lam_i - 1j * eps
        D = 1 + kap * (al2 * r + k.v2 * q)
        den = k.b ** 2 * pp + 1 / q + sig * (pp * al2 / D)
        e1, e2 = s - np.sum(w / den), r - np.sum(w * sig / den)
        e3 = pp * (k.s2 - z) + pp * k.v2 / D + (1 - pp) / q - s / q ** 2
        return [e1.real, e1.imag, e2.real, e2.imag, e3.real, e3.imag]

    out = np.empty(lam.size)
    for i, lam_i in enumerate(lam):
        q0 = -1 / (lam_i - 1j * ladder[0])
        v = [q0.real, q0.imag] * 3
        for eps in ladder:
            v = root(equations, v, args=(lam_i, eps), method="lm", options={"xtol": 1e-15, "ftol": 1e-15}).x
        out[i] = abs(v[1]) / math.pi
    return out


def compare(sigma, weights, num: int) -> dict:
    model = SpectrumModel.build(4.0, 1.0, 0.01, sigma=sigma, weights=weights)
    lam = np.linspace(1e-3, 10.0, num)
    eps_max = 100.0
    t_ours = best_time(lambda: stieltjes(lam, model, eps_max=eps_max))
    sol = stieltjes(lam, model, eps_max=eps_max)
    ours = sol["q"].imag / math.pi
    t0 = time.perf_counter()
    base = baseline_density(lam, model, eps_max=eps_max)
    t_base = time.perf_counter() - t0
    diff = np.abs(ours - base)
    return {"sigma": list(sigma), "points": num, "seconds_vectorized": t_ours, "seconds_per_lambda_lm": t_base,
            "speedup": t_base / t_ours, "max_density_difference": float(diff.max()),
            "points_differing_over_1e-6": int((diff > 1e-6).sum()), "max_density": float(ours.max()),
            "max_residual_vectorized": sol["residual"], "converged_fraction": float(sol["converged"].mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rf_spectrum", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="write the table as JSON here")
    p.add_argument("--num", type=int, default=400, help="lambda points (default 400)")
    a = p.parse_args(argv)
    rows = [compare((1.0,), None, a.num), compare((0.5, 1.5), (0.5, 0.5), a.num)]
    print(f"{'Sigma':<12} {'points':>6} {'vectorized s':>13} {'per-lambda LM s':>16} {'speedup':>8} {'max |diff|':>11}")
    for r in rows:
        print(f"{str(r['sigma']):<12} {r['points']:>6} {r['seconds_vectorized']:>13.3f}"
              f" {r['seconds_per_lambda_lm']:>16.2f} {r['speedup']:>8.0f} {r['max_density_difference']:>11.2e}")
    if a.out:
        atomic_write_json(a.out, {"rows": rows, "versions": versions()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
