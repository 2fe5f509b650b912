"""``memgen rf-spectrum`` and ``memgen rf-dynamics``: the random-features figures with the user's settings.

    memgen rf-spectrum --psi-p 4 --psi-n 1 --t 0.01 --sigma 0.5,1.5 --d 200 [--true] --out DIR
        the spectral density of U from the saddle point (delta peak, bulks, edges, masses, tau_gen and
        tau_mem) against the eigenvalues of the Gaussian-equivalent U (and of the true U with --true):
        :mod:`figures.rf_spectrum` for one Sigma. Writes rf_spectrum.png, density_custom.csv,
        eigenvalues_ge_custom.csv (eigenvalues_true_custom.csv), summary.json, record.json.
    memgen rf-dynamics --psi-p 2 --psi-n 0.5,1,2,4 --d 50 --t 0.01 [--simulate] --out DIR
        train loss, test loss and score error at every tau from one eigendecomposition of U
        (tau = steps x lr / d^2), their half-way crossing times against the spectrum's relaxation times,
        and optionally simulated gradient descent with fresh noise: :mod:`figures.rf_dynamics`.
        Writes rf_dynamics.png, curves.csv, simulation.csv, summary.json, record.json.

The figure modules are imported when a command runs, so that ``memgen --help`` stays fast.
"""
from __future__ import annotations

import argparse
import time

from memgen.checks import out_folder

SIGMA_NAME = "custom"
"""The name of the user's Sigma in the file names of ``rf-spectrum``."""


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
    p.add_argument("--out", type=out_folder, default="memgen-out/rf", help="output folder (default memgen-out/rf)")


def run_spectrum(args) -> int:
    from figures.rf_spectrum import make, report

    t0 = time.perf_counter()
    summary = make(args.out, psi_p=args.psi_p, psi_n=args.psi_n, t=args.t, d_ge=args.d,
                   d_true=args.d if args.true else 0, sigmas={SIGMA_NAME: (args.sigma, args.weights)},
                   activation=args.activation, seed=args.seed, command="memgen rf-spectrum")
    report(summary, args.out)
    print(f"{time.perf_counter() - t0:.1f} s")
    return 0


def run_dynamics(args) -> int:
    from figures.rf_dynamics import make, report

    t0 = time.perf_counter()
    summary = make(args.out, psi_p=args.psi_p, psi_ns=args.psi_n, d=args.d, t=args.t, sim_tau_max=args.sim_tau_max,
                   seed=args.seed, command="memgen rf-dynamics", tau_max=args.tau_max, num=args.num,
                   adam_psi_n=None, activation=args.activation, sigma=args.sigma, weights=args.weights,
                   matrices=args.matrices, ridge=args.ridge, simulate_gd=args.simulate, dtau=args.dtau)
    report(summary, args.out)
    print(f"{time.perf_counter() - t0:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("rf-spectrum", help="spectral density of the random-features matrix U",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--psi-n", type=float, default=1.0, help="n/d, training points per dimension (default 1)")
    p.add_argument("--d", type=int, default=200, help="dimension of the empirical U (default 200)")
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
