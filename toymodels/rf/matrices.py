"""The matrices U and V that make the random-features training loss quadratic in A.

Features at OU time t: ``phi(x) = f(W x / sqrt(d))`` (p features, ``W`` p x d), noisy training points
``x_t^nu = exp(-t) x^nu + sqrt(Delta) xi``. Training matrices (expectations over the noise xi):

    ``U = (1/n) sum_nu E_xi[phi(x_t^nu) phi(x_t^nu)^T]``   (p x p)
    ``V = (1/n) sum_nu E_xi[phi(x_t^nu) xi^T]``            (p x d)

Given ``x^nu`` the pre-activations are Gaussian, ``h_i = m_i + s_i z_i`` with ``m_i = exp(-t) w_i.x^nu / sqrt(d)``,
``s_i^2 = Delta |w_i|^2 / d`` and correlations ``rho_ij = w_i.w_j / (|w_i| |w_j|)``, so each entry of U
is a two-dimensional Gaussian integral. ``method='quadrature'`` evaluates all of them at once through
Mehler's expansion ``E[f(h_i) f(h_j)] = sum_k rho_ij^k c_k(m_i, s_i) c_k(m_j, s_j)`` (one-dimensional
Gauss-Hermite or closed-form Hermite coefficients, one p x n x p GEMM per order k), truncated at
the order K where ``max|rho|^(K+1) max E[f^2] <= tol`` (a rigorous bound, by Cauchy-Schwarz); the
diagonal is the exact one-dimensional ``E[f(h_i)^2]``. V is exact by Stein's lemma:
``V = sqrt(Delta / d) diag((1/n) sum_nu E[f'(h_i^nu)]) W``.
``method='mc'`` averages over ``draws`` noise draws per training point instead (or over given draws).

Population matrices for Gaussian data ``x ~ N(0, Sigma)`` (test loss and score error) are the same
expectations with ``x_t ~ N(0, C_t)``, ``C_t = exp(-2t) Sigma + Delta I`` (zero means).

Gaussian-equivalent U (docs/rf_theory.md, plus the mean-feature spike that only non-odd activations have):
``U_GE = G G^T / n + b_t^2 W W^T / d + s_t^2 I + mu_0^2 1 1^T``, ``G = exp(-t) a_t W X / sqrt(d) + v_t Omega``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from memgen.checks import as_points, as_tensor, integer, positive
from memgen.noise import ou_delta

from .activations import DEFAULT_NODES, get_activation
from .constants import GEConstants

MAX_ORDER = 400
"""Largest Mehler order; beyond it ``method='quadrature'`` refuses (use ``method='mc'``)."""
AUTO_RHO = 0.9
"""``method='auto'`` uses quadrature when every feature correlation is below this (order <= ~230), else Monte Carlo."""


@dataclass
class RFMatrices:
    """``U`` (p x p), ``V`` (p x d) as float64 numpy arrays, how they were computed and their error.

    ``error`` is a bound on the absolute error of any entry of U (quadrature: the Mehler truncation
    bound; Monte Carlo: an upper bound on the standard error of an entry).
    """

    U: np.ndarray
    V: np.ndarray
    method: str
    error: float
    info: dict = field(default_factory=dict)


def _as_numpy(x, name: str, shape_dim: int | None = None) -> np.ndarray:
    t = as_points(x, name, dtype=torch.float64)
    if t.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D array, got shape {tuple(t.shape)}")
    if shape_dim is not None and t.shape[1] != shape_dim:
        raise ValueError(f"{name}: expected {shape_dim} columns (the data dimension d), got {t.shape[1]}")
    return t.numpy()


def _order(rho_max: float, f2_max: float, tol: float) -> int:
    """Smallest K with ``rho_max^(K+1) f2_max <= tol`` (the Mehler truncation bound)."""
    if rho_max <= 0:
        return 1
    if rho_max >= 1:
        return MAX_ORDER + 1
    return max(1, math.ceil(math.log(tol / f2_max) / math.log(rho_max)) - 1)


def _mehler(moments_fn, rho: np.ndarray, n: int, chunks, tol: float):
    """``(1/n) sum_nu sum_k rho^k c_k c_k^T`` off the diagonal, ``(1/n) sum_nu E[f^2]`` on it.

    ``chunks()`` yields index blocks over nu; ``moments_fn(block, K) -> ([K+1, p, b], [p, b])``.
    The order K is chosen from the first block's largest ``E[f^2]`` (times 4) and checked against
    the global one at the end (recomputed with a higher order in the rare case the bound fails).
    Returns ``(U, error bound, K, max |rho|, slope)`` where ``slope = (1/n) sum_nu c_1``.
    """
    p = rho.shape[0]
    off = rho - np.diag(np.diag(rho))
    rho_max = float(np.abs(off).max()) if p > 1 else 0.0
    f2_guess = None
    while True:
        U, diag, slope, f2_max, K = np.zeros((p, p)), np.zeros(p), np.zeros(p), 0.0, None
        for block in chunks():
            if K is None:
                probe = slice(block.start, min(block.stop, block.start + 8))
                f2_guess = f2_guess or 4 * float(moments_fn(probe, 0)[1].max())
                K = max(1, _order(rho_max, f2_guess, tol))
                if K > MAX_ORDER:
                    raise ValueError(f"W: feature correlations up to {rho_max:.3f} need more than {MAX_ORDER}"
                                     " Mehler orders; use method='mc'")
            C, second = moments_fn(block, K)
            diag += second.sum(1)
            slope += C[1].sum(1)
            f2_max = max(f2_max, float(second.max()))
            power = np.ones((p, p))
            for k in range(K + 1):
                U += power * (C[k] @ C[k].T)
                power *= off
        if _order(rho_max, f2_max, tol) <= K:
            break
        f2_guess = 2 * f2_max
    U /= n
    np.fill_diagonal(U, diag / n)
    return U, rho_max ** (K + 1) * f2_max, K, rho_max, slope / n


def _blocks(n: int, p: int, nodes: int, budget: int):
    size = max(1, budget // (8 * p * (nodes + 1)))
    return lambda: (slice(i, min(n, i + size)) for i in range(0, n, size))


def rf_matrices(W, X, t: float, *, activation="tanh", method: str = "auto", tol: float = 1e-10,
                nodes: int = DEFAULT_NODES, draws: int = 1000, noise=None, seed: int = 0,
                budget: int = 256 * 2 ** 20) -> RFMatrices:
    """Training matrices ``U, V`` of the points ``X`` ``[n, d]`` for features ``W`` ``[p, d]`` at OU time ``t``.

    Args:
        method: ``'quadrature'`` (exact up to ``tol``, see the module docstring), ``'mc'``
            (``draws`` noise draws per point from ``seed``, or the given ``noise`` ``[M, n, d]``), or
            ``'auto'`` (default): quadrature unless two features are correlated above ``AUTO_RHO``
            (tiny d), then Monte Carlo; ``method`` and ``error`` of the result say which and how exact.
        nodes: Gauss-Hermite nodes of the one-dimensional integrals (activations without closed forms).
        budget: bytes for the temporaries of one block of training points.
    """
    t = positive(t, "t")
    W = _as_numpy(W, "W")
    X = _as_numpy(X, "X", W.shape[1])
    f = get_activation(activation)
    p, d = W.shape
    n = X.shape[0]
    delta = ou_delta(t)
    if method not in ("auto", "quadrature", "mc"):
        raise ValueError(f"method: expected 'auto', 'quadrature' or 'mc', got {method!r}")
    norms = np.sqrt((W * W).sum(1))
    rho = (W @ W.T) / np.outer(norms, norms)
    if method == "auto":
        off = np.abs(rho - np.diag(np.diag(rho)))
        method = "quadrature" if p == 1 or off.max() < AUTO_RHO else "mc"
    if method == "mc":
        return _monte_carlo(W, X, t, f, draws, noise, seed)
    s = math.sqrt(delta / d) * norms
    M = math.exp(-t) * (W @ X.T) / math.sqrt(d)  # [p, n]
    chunks = _blocks(n, p, nodes, budget)
    U, err, K, rho_max, c1 = _mehler(lambda b, K: f.moments(M[:, b], s[:, None], K, nodes=nodes), rho, n, chunks, tol)
    V = math.sqrt(delta / d) * (c1 / s)[:, None] * W  # E[f'(m + s z)] = c_1 / s (Stein)
    return RFMatrices(U, V, "quadrature", err, {"order": K, "rho_max": rho_max, "nodes": nodes})


def _monte_carlo(W, X, t, f, draws, noise, seed) -> RFMatrices:
    n, d = X.shape
    delta = ou_delta(t)
    if noise is None:
        draws = integer(draws, "draws")
        gen = torch.Generator().manual_seed(int(seed))
        noise_iter = (torch.randn(n, d, generator=gen, dtype=torch.float64).numpy() for _ in range(int(draws)))
        M = int(draws)
    else:
        xi = as_tensor(noise, "noise", dtype=torch.float64).numpy()
        if xi.ndim != 3 or xi.shape[1:] != (n, d):
            raise ValueError(f"noise: expected shape [M, {n}, {d}], got {xi.shape}")
        noise_iter, M = iter(xi), xi.shape[0]
    p = W.shape[0]
    U, V, U2 = np.zeros((p, p)), np.zeros((p, d)), np.zeros((p, p))
    for xi in noise_iter:
        phi = f((math.exp(-t) * X + math.sqrt(delta) * xi) @ W.T / math.sqrt(d))  # [n, p]
        U += phi.T @ phi
        V += phi.T @ xi
        sq = phi * phi
        U2 += sq.T @ sq
    total = n * M
    U, V = U / total, V / total
    # upper bound on the standard error of an entry: sqrt(E[(phi_i phi_j)^2] / (n M))
    se = float(np.sqrt(U2.max() / total / total))
    return RFMatrices(U, V, "mc", se, {"draws": M})


def _covariance(cov, d: int) -> np.ndarray:
    c = as_tensor(cov, "cov", dtype=torch.float64).numpy()
    if c.ndim == 0:
        return float(c) * np.eye(d)
    if c.ndim == 1 and c.shape[0] == d:
        return np.diag(c)
    if c.shape == (d, d):
        return c
    raise ValueError(f"cov: expected a scalar, [d] diagonal or [d, d] covariance with d = {d}, got shape {c.shape}")


def population_matrices(W, t: float, cov=1.0, *, activation="tanh", tol: float = 1e-10,
                        nodes: int = DEFAULT_NODES) -> dict:
    """``U_pop, V_pop`` for Gaussian data ``x ~ N(0, cov)`` and ``Tr(C_t^-1)`` (the score-error constant).

    ``U_pop = E[phi(x_t) phi(x_t)^T]``, ``V_pop = E[phi(x_t) xi^T] = sqrt(Delta/d) diag(E f'(h_i)) W``,
    with ``x_t ~ N(0, C_t)``, ``C_t = exp(-2t) cov + Delta I``; true score ``-C_t^-1 x``.
    Returns a dict with ``U``, ``V``, ``trace_inv`` (``Tr C_t^-1``), ``error`` (Mehler bound).
    """
    t = positive(t, "t")
    W = _as_numpy(W, "W")
    f = get_activation(activation)
    p, d = W.shape
    delta = ou_delta(t)
    C = math.exp(-2 * t) * _covariance(cov, d) + delta * np.eye(d)
    K_pre = W @ C @ W.T / d
    sd = np.sqrt(np.diag(K_pre))
    rho = K_pre / np.outer(sd, sd)
    zero = np.zeros((p, 1))
    U, err, K, rho_max, c1 = _mehler(lambda b, K: f.moments(zero, sd[:, None], K, nodes=nodes), rho, 1,
                                     lambda: iter([slice(0, 1)]), tol)
    V = math.sqrt(delta / d) * (c1 / sd)[:, None] * W
    trace_inv = float(np.trace(np.linalg.inv(C)))
    return {"U": U, "V": V, "trace_inv": trace_inv, "error": err, "order": K, "rho_max": rho_max}


def gaussian_equivalent_U(W, X, constants: GEConstants, *, seed: int = 0) -> np.ndarray:
    """``U_GE = G G^T/n + b_t^2 W W^T/d + s_t^2 I + mu_0^2 1 1^T``, ``G = exp(-t) a_t W X^T/sqrt(d) + v_t Omega``.

    ``W`` ``[p, d]``, ``X`` ``[n, d]`` (the training points, batch first), ``Omega`` ``[p, n]`` i.i.d.
    N(0, 1) drawn from ``seed``. Returns a float64 numpy ``[p, p]`` matrix.
    """
    W = _as_numpy(W, "W")
    X = _as_numpy(X, "X", W.shape[1])
    p, d = W.shape
    n = X.shape[0]
    k = constants
    omega = np.random.default_rng(seed).standard_normal((p, n))
    G = math.exp(-k.t) * k.a * (W @ X.T) / math.sqrt(d) + math.sqrt(max(k.v2, 0.0)) * omega
    U = G @ G.T / n + k.b ** 2 * (W @ W.T) / d + k.mu0 ** 2
    U[np.diag_indices(p)] += k.s2
    return U


def gaussian_equivalent_problem(W, X, constants: GEConstants, *, cov=1.0, seed: int = 0) -> dict:
    """All the matrices of the Gaussian-equivalent model (cheap at any size; the theory's object).

    ``U = gaussian_equivalent_U(W, X)``, ``V = V_test = sqrt(Delta/d) a_t W`` (Stein's lemma with the
    mean slope), ``U_test = a_t^2 W C_t W^T/d + (v_t^2 + s_t^2) I + mu_0^2 1 1^T`` (the population
    feature covariance, ``C_t = exp(-2t) cov + Delta I``) and ``trace_inv = Tr C_t^-1``.
    ``cov`` must have ``Tr(cov)/d`` equal to the constants' ``sigma_x2``.
    """
    W = _as_numpy(W, "W")
    p, d = W.shape
    k = constants
    C = math.exp(-2 * k.t) * _covariance(cov, d) + k.delta * np.eye(d)
    if abs(np.trace(C) - d * k.gamma2) > 1e-9 * d * k.gamma2:
        raise ValueError(f"cov: Tr(cov)/d must equal the constants' sigma_x2 = {k.sigma_x2}")
    V = math.sqrt(k.delta / d) * k.a * W
    U_test = k.a ** 2 * (W @ C @ W.T) / d + k.mu0 ** 2
    U_test[np.diag_indices(p)] += k.v2 + k.s2
    return {"U": gaussian_equivalent_U(W, X, k, seed=seed), "V": V, "U_test": U_test, "V_test": V,
            "trace_inv": float(np.trace(np.linalg.inv(C)))}
