"""Ready-made random-features problems: Gaussian data with a given spectrum, features, and all matrices.

Shared by the ``memgen rf-*`` commands, the figures and the benchmarks, so that they build the same
problem from the same seed: ``W`` (p x d) and the training points ``X`` (n x d, ``N(0, Sigma)`` with
``Sigma`` diagonal, eigenvalue ``sigma_k`` on a fraction ``weights_k`` of the axes) are drawn from one
``numpy.random.default_rng(seed)``, W first.
"""
from __future__ import annotations

import numpy as np

from memgen.checks import integer, positive

from .constants import ge_constants
from .dynamics import ClosedForm, Losses
from .matrices import gaussian_equivalent_problem, population_matrices, rf_matrices
from .spectrum import sigma_mixture

MATRICES = ("exact", "ge")


def sigma_diagonal(d: int, sigma=(1.0,), weights=None) -> np.ndarray:
    """The d eigenvalues of a diagonal Sigma: ``sigma_k`` on ``round(weights_k d)`` axes (the last takes the rest)."""
    lam, w = sigma_mixture(sigma, weights)
    counts = np.round(w * d).astype(int)
    counts[-1] = d - counts[:-1].sum()
    if (counts < 0).any():
        raise ValueError(f"d: {d} axes cannot hold the fractions {w.tolist()}")
    return np.repeat(lam, counts)


def rf_problem(psi_p: float, psi_n: float, d: int, t: float, *, activation="tanh", sigma=(1.0,), weights=None,
               seed: int = 0, matrices: str = "exact", tol: float = 1e-10) -> dict:
    """Features, data and matrices of one RF problem (``p = round(psi_p d)``, ``n = round(psi_n d)``).

    ``matrices='exact'``: U, V by Mehler quadrature and the exact population matrices;
    ``'ge'``: the Gaussian-equivalent model (:func:`gaussian_equivalent_problem`), cheap at large p.
    Returns ``{'W', 'X', 'cov', 'constants', 'losses', 'p', 'n', 'd', 't', 'psi_p', 'psi_n', 'matrices'}``.
    """
    psi_p, psi_n, t = positive(psi_p, "psi_p"), positive(psi_n, "psi_n"), positive(t, "t")
    d = integer(d, "d")
    if matrices not in MATRICES:
        raise ValueError(f"matrices: expected one of {MATRICES}, got {matrices!r}")
    d = int(d)
    p, n = max(1, round(psi_p * d)), max(1, round(psi_n * d))
    cov = sigma_diagonal(d, sigma, weights)
    constants = ge_constants(t, activation=activation, sigma_x2=float(cov.mean()))
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, d))
    X = rng.standard_normal((n, d)) * np.sqrt(cov)
    if matrices == "exact":
        m = rf_matrices(W, X, t, activation=activation, tol=tol)
        pop = population_matrices(W, t, cov, activation=activation, tol=tol)
        losses = Losses(m.U, m.V, t, pop["U"], pop["V"], pop["trace_inv"])
    else:
        g = gaussian_equivalent_problem(W, X, constants, cov=cov, seed=seed + 1)
        losses = Losses(g["U"], g["V"], t, g["U_test"], g["V_test"], g["trace_inv"])
    return {"W": W, "X": X, "cov": cov, "constants": constants, "losses": losses, "p": p, "n": n, "d": d,
            "t": t, "psi_p": p / d, "psi_n": n / d, "matrices": matrices, "activation": constants.activation}


def loss_curves(problem: dict, tau, *, ridge: float = 0.0) -> dict:
    """Closed-form train/test loss and score error of ``problem`` at the times ``tau`` (see dynamics.py)."""
    return ClosedForm(problem["losses"], ridge=ridge).curves(tau)


def log_times(tau_max: float = 1e7, num: int = 400, tau_min: float = 0.1) -> np.ndarray:
    """``0``, then ``num - 1`` log-spaced times from ``tau_min`` to ``tau_max`` (the curves' usual grid)."""
    positive(tau_max, "tau_max")
    return np.concatenate([[0.0], np.geomspace(positive(tau_min, "tau_min"), tau_max, int(num) - 1)])

