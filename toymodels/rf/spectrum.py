"""Spectral density of U from the saddle-point equations, vectorized over the whole lambda grid.

Unknowns ``q`` (the Stieltjes transform ``(1/p) Tr (U - z)^-1``) and ``r``, at ``z = lambda + i eps``,
with ``kappa = psi_p/psi_n``, ``alpha^2 = a_t^2 exp(-2t)`` and ``rho_Sigma = sum_k w_k delta(l - l_k)``:

    ``D = 1 + kappa (alpha^2 r + v_t^2 q)``,   ``s_hat = b_t^2 psi_p + 1/q``,   ``r_hat = psi_p alpha^2 / D``
    ``s = sum_k w_k / (s_hat + l_k r_hat)``,   ``r = sum_k w_k l_k / (s_hat + l_k r_hat)``
    ``psi_p (s_t^2 - z) + psi_p v_t^2 / D + (1 - psi_p)/q - s/q^2 = 0``
    ``rho(lambda) = Im q / pi``   (eps -> 0+)

(docs/rf_theory.md's equations, written with ``z = lambda + i eps`` so that ``Im q > 0``; checked against the
eigenvalues of the Gaussian-equivalent and of the true U, see tests/test_rf_spectrum.py.) They are
the deterministic equivalent of ``U_GE = G G^T/n + b^2 W W^T/d + s^2 I`` (conditionally on W a sample
covariance plus a fixed matrix, then a generalized Marchenko-Pastur law in W).

Solver: complex Newton on ``(q, r)`` (analytic 2 x 2 Jacobian, backtracking) for all lambda at once,
continued in eps from ``eps_max`` (where ``q = -1/z``) geometrically down to ``eps_min`` (1e-9).
The delta peak at ``s_t^2`` (mass ``1 - (1 + psi_n)/psi_p`` when positive: the null space of
``U - s_t^2 I``) is measured as the residue ``eps Im q(s_t^2 + i eps)`` and removed from q, so that the
returned density is the continuous part, free of the peak's Lorentzian tail.

Time scales: gradient flow relaxes an eigenmode lambda of U on ``psi_p / (2 Delta_t lambda)``
(tau = steps x lr / d^2, see dynamics.py), so a group of modes B implies
``tau_B = psi_p/(2 Delta_t <lambda>_B)`` (see :class:`Spectrum`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from memgen.checks import positive

from .constants import GEConstants, ge_constants


def sigma_mixture(sigma=(1.0,), weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Validated eigenvalues ``l_k >= 0`` of Sigma and their fractions ``w_k`` (normalized; default equal)."""
    lam = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) or (lam < 0).any():
        raise ValueError(f"sigma: expected eigenvalues >= 0 of Sigma, got {sigma!r}")
    w = np.full(lam.size, 1.0 / lam.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != lam.shape or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights: expected {lam.size} non-negative fractions, got {weights!r}")
    return lam, w / w.sum()


@dataclass(frozen=True)
class SpectrumModel:
    """Parameters of the saddle point: ratios, constants, and the spectrum of Sigma (a discrete mixture)."""

    psi_p: float
    psi_n: float
    constants: GEConstants
    sigma: tuple = (1.0,)
    weights: tuple = (1.0,)

    @classmethod
    def build(cls, psi_p: float, psi_n: float, t: float | None = None, *, activation="tanh", sigma=(1.0,),
              weights=None, constants: GEConstants | None = None, method: str = "auto") -> "SpectrumModel":
        """Validate the parameters and compute the constants at ``sigma_x^2 = sum_k w_k l_k`` unless given."""
        psi_p, psi_n = positive(psi_p, "psi_p"), positive(psi_n, "psi_n")
        lam, w = sigma_mixture(sigma, weights)
        sx2 = float(w @ lam)
        if constants is None:
            if t is None:
                raise ValueError("t: give the OU time t or the constants")
            constants = ge_constants(t, activation=activation, sigma_x2=sx2, method=method)
        elif abs(constants.sigma_x2 - sx2) > 1e-12 * sx2:
            raise ValueError(f"constants: computed at sigma_x2 = {constants.sigma_x2}, but sigma gives {sx2}")
        return cls(psi_p, psi_n, constants, tuple(lam.tolist()), tuple(w.tolist()))

    def scale(self) -> float:
        """A generous scale of the spectrum: ``E f^2 (1 + psi_p)(1 + 1/sqrt(psi_n))^2 (1 + max l)`` (scan range, first eps)."""
        k = self.constants
        return k.second_moment * (1 + self.psi_p) * (1 + 1 / math.sqrt(self.psi_n)) ** 2 * (1 + max(self.sigma))


def _residual(q, r, z, m: SpectrumModel, jacobian: bool):
    """Residuals ``(F1, F2)`` of the two equations and, on request, their 2 x 2 complex Jacobian."""
    k = m.constants
    pp, kap, al2, v2, b2 = m.psi_p, m.psi_p / m.psi_n, k.alpha2, k.v2, k.b ** 2
    lam, w = np.asarray(m.sigma), np.asarray(m.weights)
    D = 1 + kap * (al2 * r + v2 * q)
    rh = pp * al2 / D
    den = (b2 * pp + 1 / q)[:, None] + lam * rh[:, None]
    inv = w / den
    s = inv.sum(1)
    F1 = r - (inv * lam).sum(1)
    F2 = pp * (k.s2 - z) + pp * v2 / D + (1 - pp) / q - s / q ** 2
    if not jacobian:
        return F1, F2, None
    drh_dq, drh_dr = -rh * kap * v2 / D, -rh * kap * al2 / D
    dden_dq = -1 / q[:, None] ** 2 + lam * drh_dq[:, None]
    dden_dr = lam * drh_dr[:, None]
    inv2 = inv / den
    ds_dq, ds_dr = -(inv2 * dden_dq).sum(1), -(inv2 * dden_dr).sum(1)
    J11, J12 = (inv2 * lam * dden_dq).sum(1), 1 + (inv2 * lam * dden_dr).sum(1)
    J21 = -pp * v2 * kap * v2 / D ** 2 - (1 - pp) / q ** 2 - ds_dq / q ** 2 + 2 * s / q ** 3
    J22 = -pp * v2 * kap * al2 / D ** 2 - ds_dr / q ** 2
    return F1, F2, (J11, J12, J21, J22)


def _norm(F1, F2, q, r):
    return np.abs(F1) / (1 + np.abs(r)) + np.abs(F2 * q)


def _newton(q, r, z, m: SpectrumModel, tol: float, max_iter: int):
    """Damped complex Newton on all points at once; returns ``(q, r, converged mask)``."""
    active = np.ones(q.shape, bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        qa, ra, za = q[idx], r[idx], z[idx]
        F1, F2, (J11, J12, J21, J22) = _residual(qa, ra, za, m, True)
        det = J11 * J22 - J12 * J21
        dq = (F2 * J12 - F1 * J22) / det
        dr = (F1 * J21 - F2 * J11) / det
        base = _norm(F1, F2, qa, ra)
        step = np.ones(idx.size)
        for _ in range(12):  # backtracking: halve where the residual grows or Im q changes sign
            qn, rn = qa + step * dq, ra + step * dr
            G1, G2, _ = _residual(qn, rn, za, m, False)
            bad = ~np.isfinite(qn) | (_norm(G1, G2, qn, rn) > base * (1 + 1e-9) + 1e-300) | (qn.imag < 0)
            if not bad.any():
                break
            step = np.where(bad, step / 2, step)
        q[idx], r[idx] = qn, rn
        small = (np.abs(step * dq) <= tol * np.abs(qn)) & (np.abs(step * dr) <= tol * (np.abs(rn) + 1e-300))
        active[idx[small]] = False
    return q, r, ~active


def stieltjes(lam, model: SpectrumModel, *, eps_min: float = 1e-9, eps_max: float | None = None,
              steps: int = 48, tol: float = 1e-13, max_iter: int = 60) -> dict:
    """``q(z), r(z)`` at ``z = lam + i eps_min`` for every lambda at once, by continuation in eps.

    eps goes geometrically from ``eps_max`` (default ``100 * model.scale()``, where ``q = -1/z``) to
    ``10 eps_min`` in ``steps - 1`` stages, then to ``eps_min``; at each stage damped Newton runs to
    relative step ``tol``. Returns ``q``, ``r``, ``q_coarse`` (q at ``10 eps_min``), ``residual``
    (largest residual of the two equations at the end) and ``converged`` (a boolean mask).
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    eps_min = positive(eps_min, "eps_min")
    eps_max = 100 * model.scale() if eps_max is None else positive(eps_max, "eps_max")
    if eps_max <= 10 * eps_min:
        raise ValueError(f"eps_max ({eps_max}) must exceed 10 eps_min ({10 * eps_min})")
    if int(steps) < 3:
        raise ValueError(f"steps: expected an integer >= 3, got {steps!r}")
    ladder = np.append(np.geomspace(eps_max, 10 * eps_min, int(steps) - 1), eps_min)
    z = lam + 1j * ladder[0]
    q = -1 / z
    r = -float(np.dot(model.weights, model.sigma)) / z
    ok = np.ones(lam.shape, bool)
    q_coarse = q
    for eps in ladder:
        q_coarse = q.copy()
        z = lam + 1j * eps
        q, r, ok = _newton(q, r, z, model, tol, max_iter)
    F1, F2, _ = _residual(q, r, z, model, False)
    return {"q": q, "r": r, "q_coarse": q_coarse, "residual": float(np.max(_norm(F1, F2, q, r))), "converged": ok}


def delta_peak(model: SpectrumModel, *, eps: float = 1e-13, **kw) -> float:
    """Mass of the delta peak at ``s_t^2`` from the residue ``eps Im q(s_t^2 + i eps)`` (0 below 1e-6).

    The continuous part adds ``eps Im q_bulk``: O(eps) for a bulk away from s_t^2, O(sqrt(eps)) for a
    bulk with an inverse-square-root edge at s_t^2 (the threshold psi_p = 1 + psi_n).
    """
    q = stieltjes(np.array([model.constants.s2]), model, eps_min=eps, **kw)["q"][0]
    mass = eps * q.imag
    return float(mass) if mass > 1e-6 else 0.0


def continuous_density(lam, model: SpectrumModel, *, delta_mass: float | None = None, eps_min: float = 1e-9,
                       **kw) -> tuple[np.ndarray, dict]:
    """``rho(lambda)`` of the continuous part: ``Im(q - m_delta/(s_t^2 - z)) / pi`` on the grid ``lam``.

    Returns the density and the solver's dict, with ``delta_mass`` and ``inside`` (the support test:
    the density does not scale with eps there, ``rho(eps_min) > rho(10 eps_min)/2``, while in a gap it
    falls in proportion to eps).
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    m_d = delta_peak(model) if delta_mass is None else float(delta_mass)
    sol = stieltjes(lam, model, eps_min=eps_min, **kw)
    s2 = model.constants.s2
    rho = np.maximum((sol["q"] - m_d / (s2 - lam - 1j * eps_min)).imag, 0.0) / math.pi
    coarse = np.maximum((sol["q_coarse"] - m_d / (s2 - lam - 10j * eps_min)).imag, 0.0) / math.pi
    inside = (rho > 0.5 * coarse) & (rho > 0) & (lam > s2)
    return rho, {**sol, "delta_mass": m_d, "inside": inside}


@dataclass
class Bulk:
    """One interval of the continuous spectrum: edges, mass, ``<1/lambda>`` and ``<lambda>`` over it."""

    lo: float
    hi: float
    mass: float
    mean_inverse: float
    mean: float


@dataclass
class Spectrum:
    """The solved spectral density of U and what it implies.

    ``lam``/``density``: the grid and the continuous density on it; ``delta_mass`` at ``delta_location``
    (= s_t^2); ``bulks``: the support intervals (edges refined, masses by Gauss-Chebyshev quadrature).
    The time scales come from the two groups of modes that carry V (rank d): the highest
    ``min(n, d)/p`` of the mass (the data directions, learnt first) give ``lambda_gen``, the lowest
    ``d/p`` of the continuous part (the directions of W that the data leave to the noise term
    ``b_t^2 W W^T/d``, with eigenvalues just above s_t^2) give ``lambda_mem``, both mean eigenvalues
    of their group; ``tau = psi_p / (2 Delta_t lambda)``; ``tau_delta`` is that of the delta peak.
    (Not the bulk of mass ``(n - d)/p`` near ``s_t^2 + v_t^2 (1 ± sqrt(psi_p/psi_n))^2``: V has
    almost no weight on it.) ``tau_mem`` is meant for ``psi_p > 1 + psi_n`` (a delta peak exists and
    the memorizing modes are the lowest of the continuous part); measured against the half-gap time of
    the exact curves it is within 0.75-1.45x there (figures/rf_timescales.py), but off by up to ~4x
    at ``psi_n >= psi_p - 1``, where those modes mix with the noise bulk.
    """

    model: SpectrumModel
    lam: np.ndarray
    density: np.ndarray
    delta_mass: float
    delta_location: float
    bulks: list
    lambda_mem: float
    lambda_gen: float
    tau_mem: float
    tau_gen: float
    tau_delta: float
    residual: float
    info: dict = field(default_factory=dict)

    @property
    def total_mass(self) -> float:
        return self.delta_mass + sum(b.mass for b in self.bulks)

    def as_dict(self) -> dict:
        m = self.model
        return {"psi_p": m.psi_p, "psi_n": m.psi_n, "sigma": list(m.sigma), "weights": list(m.weights),
                "constants": m.constants.as_dict(), "delta_mass": self.delta_mass,
                "delta_location": self.delta_location, "total_mass": self.total_mass,
                "bulks": [vars(b) for b in self.bulks], "lambda_mem": self.lambda_mem,
                "lambda_gen": self.lambda_gen, "tau_mem": self.tau_mem, "tau_gen": self.tau_gen,
                "tau_delta": self.tau_delta, "residual": self.residual,
                "asymptotic_masses": asymptotic_masses(m.psi_p, m.psi_n), **self.info}


def asymptotic_masses(psi_p: float, psi_n: float) -> dict:
    """Masses when the bulks separate: delta ``max(0, 1 - (1 + psi_n)/psi_p)``, fast (data) bulk
    ``1/psi_p``, slow bulk(s) the rest (``psi_n/psi_p`` when ``psi_p > 1 + psi_n``)."""
    psi_p, psi_n = positive(psi_p, "psi_p"), positive(psi_n, "psi_n")
    delta = max(0.0, 1.0 - (1.0 + psi_n) / psi_p)
    return {"delta": delta, "fast": min(1.0, 1.0 / psi_p), "slow": max(0.0, 1.0 - delta - 1.0 / psi_p)}


def _support(inside: np.ndarray) -> list:
    """Index ranges ``[(i0, i1)]`` of consecutive grid points inside the support."""
    on = np.concatenate([[False], inside, [False]]).astype(int)
    starts = np.flatnonzero(np.diff(on) == 1)
    ends = np.flatnonzero(np.diff(on) == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


def _refine_edge(inside: float, outside: float, model, delta_mass, levels: int, points: int, **kw) -> float:
    """Locate the edge between a grid point inside the support and one outside it (nested grids)."""
    for _ in range(levels):
        grid = np.linspace(inside, outside, points)
        _, sol = continuous_density(grid, model, delta_mass=delta_mass, **kw)
        last = int(np.flatnonzero(sol["inside"]).max(initial=0))
        inside, outside = grid[last], grid[min(last + 1, points - 1)]
    return 0.5 * (inside + outside)


def _bulk(lo, hi, model, delta_mass, nodes: int, **kw) -> tuple[Bulk, np.ndarray, np.ndarray]:
    """Mass and moments over ``[lo, hi]`` by Gauss-Chebyshev quadrature (exact for sqrt edges x smooth).

    Returns the bulk and its quadrature nodes and weights (``sum_j w_j g(x_j) ≈ ∫ rho g``).
    """
    theta = (np.arange(nodes) + 0.5) * math.pi / nodes
    x = 0.5 * (lo + hi) - 0.5 * (hi - lo) * np.cos(theta)
    rho, _ = continuous_density(x, model, delta_mass=delta_mass, **kw)
    wts = rho * 0.5 * (hi - lo) * np.sin(theta) * math.pi / nodes
    mass = float(wts.sum())
    bulk = Bulk(lo=float(lo), hi=float(hi), mass=mass, mean_inverse=float((wts / x).sum() / mass),
                mean=float((wts * x).sum() / mass))
    return bulk, x, wts


def _group_mean(x: np.ndarray, w: np.ndarray, mass: float, top: bool) -> float:
    """``<lambda>`` over the lowest (or highest) ``mass`` of the quadrature measure ``(x_j, w_j)``."""
    order = np.argsort(x)[::-1] if top else np.argsort(x)
    x, w = x[order], w[order]
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    take = np.clip(mass - before, 0.0, w)
    return float((take * x).sum() / take.sum()) if take.sum() > 0 else math.nan


def solve_spectrum(psi_p: float, psi_n: float, t: float | None = None, *, activation="tanh", sigma=(1.0,), weights=None,
             constants: GEConstants | None = None, lam=None, num: int = 400, scan: int = 4000,
             nodes: int = 256, eps_min: float = 1e-9, **kw) -> Spectrum:
    """Solve the saddle point for the density of U, its delta peak, bulks, edges, masses and time scales.

    Args:
        psi_p, psi_n: ``p/d`` and ``n/d`` (> 0). t: OU time (> 0) unless ``constants`` are given.
        activation, sigma, weights: activation, eigenvalues of Sigma and their fractions.
        lam: the grid on which to return the density (default ``num`` points, log-spaced in
            ``lambda - s_t^2`` up to past the top edge).
        scan: points of the log-spaced scan (in ``lambda - s_t^2``) that finds the support (see
            :func:`continuous_density`); ``nodes``: Gauss-Chebyshev nodes per bulk.
        eps_min, kw: passed to :func:`stieltjes`.
    """
    model = SpectrumModel.build(psi_p, psi_n, t, activation=activation, sigma=sigma, weights=weights,
                                constants=constants)
    k = model.constants
    m_d = delta_peak(model, **kw)
    top = model.scale()
    scan_lam = k.s2 + np.geomspace(1e-9 * top, top, int(scan))
    _, sol = continuous_density(scan_lam, model, delta_mass=m_d, eps_min=eps_min, **kw)
    bulks, xs, ws = [], [], []
    for i0, i1 in _support(sol["inside"]):
        lo = (_refine_edge(scan_lam[i0], scan_lam[i0 - 1], model, m_d, 3, 24, eps_min=eps_min, **kw)
              if i0 > 0 else k.s2)
        hi = (_refine_edge(scan_lam[i1], scan_lam[i1 + 1], model, m_d, 3, 24, eps_min=eps_min, **kw)
              if i1 < len(scan_lam) - 1 else scan_lam[-1])
        bulk, x, w = _bulk(lo, hi, model, m_d, int(nodes), eps_min=eps_min, **kw)
        bulks.append(bulk)
        xs.append(x)
        ws.append(w)
    x, w = (np.concatenate(xs), np.concatenate(ws)) if bulks else (np.ones(1), np.zeros(1))
    lam_gen = _group_mean(x, w, min(1.0, min(1.0, model.psi_n) / model.psi_p), top=True)
    lam_mem = _group_mean(x, w, 1.0 / model.psi_p, top=False) if model.psi_p > 1 else math.nan
    if lam is None:
        hi = max(b.hi for b in bulks) if bulks else top
        lam = k.s2 + np.geomspace(1e-6 * (hi - k.s2), 1.05 * (hi - k.s2), int(num))
    lam = np.asarray(lam, dtype=np.float64)
    dens, sol = continuous_density(lam, model, delta_mass=m_d, eps_min=eps_min, **kw)
    dens = np.where(sol["inside"], dens, 0.0)  # outside the support only the O(eps) tails remain
    scale = model.psi_p / (2 * k.delta)
    return Spectrum(model=model, lam=lam, density=dens, delta_mass=m_d, delta_location=k.s2, bulks=bulks,
                    lambda_mem=lam_mem, lambda_gen=lam_gen, tau_mem=scale / lam_mem,
                    tau_gen=scale / lam_gen, tau_delta=scale / k.s2 if m_d > 0 else math.nan,
                    residual=sol["residual"], info={"converged_fraction": float(sol["converged"].mean())})


def relaxation_times(psi_p: float, psi_n: float, t: float, **kw) -> dict:
    """``tau_gen``, ``tau_mem`` (and ``tau_delta``): the relaxation times ``psi_p / (2 Delta_t lambda)`` of
    the mode groups of the spectrum (see :class:`Spectrum`); measured counterpart: :func:`crossing_times`."""
    sp = solve_spectrum(psi_p, psi_n, t, num=8, **kw)
    return {"tau_gen": sp.tau_gen, "tau_mem": sp.tau_mem, "tau_delta": sp.tau_delta,
            "lambda_gen": sp.lambda_gen, "lambda_mem": sp.lambda_mem}


def spectral_cdf(sp: Spectrum, x, *, points: int = 2000, eps_min: float = 1e-9) -> np.ndarray:
    """The theory's distribution function ``F(x) = m_delta 1[x >= s_t^2] + ∫_{s_t^2}^x rho``.

    The continuous part is integrated by the trapezoid rule on a Chebyshev-spaced grid of ``points``
    per bulk (dense at the square-root edges); points within 1e-10 (relative) below s_t^2 count as
    the peak (eigenvalues computed in floating point).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.where(x >= sp.delta_location * (1 - 1e-10), sp.delta_mass, 0.0)
    for b in sp.bulks:
        grid = 0.5 * (b.lo + b.hi) - 0.5 * (b.hi - b.lo) * np.cos(np.linspace(0, math.pi, int(points)))
        rho, _ = continuous_density(grid, sp.model, delta_mass=sp.delta_mass, eps_min=eps_min)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(grid))])
        out = out + np.interp(x, grid, cum, left=0.0, right=cum[-1])
    return out


def ks_distance(eigenvalues, sp: Spectrum, *, drop_delta: bool = False, **kw) -> float:
    """Kolmogorov-Smirnov distance ``sup_x |F_emp(x) - F(x)|`` between eigenvalues and the theory.

    Ties (the delta peak: eigenvalues equal to s_t^2 within 1e-10) are compared on both sides of
    their jump, ``F(x)`` and ``F(x-)``. ``drop_delta``: compare only the continuous part, without the
    lowest ``round(m_delta p)`` eigenvalues (for the true U, whose peak is spread by O(s_t^2/sqrt d)),
    against ``(F - m_delta)/(1 - m_delta)``.
    """
    ev = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    s2, m_d = sp.delta_location, sp.delta_mass
    if drop_delta:
        ev = ev[int(round(m_d * ev.size)):]
    ev = np.where(np.abs(ev - s2) <= 1e-10 * s2, s2, ev)
    x, counts = np.unique(ev, return_counts=True)
    after = np.cumsum(counts) / ev.size
    before = after - counts / ev.size
    F = spectral_cdf(sp, x, **kw)
    F_before = F - np.where(x == s2, m_d, 0.0)
    if drop_delta:
        F, F_before = (np.clip(F - m_d, 0, None) / (1 - m_d), np.clip(F_before - m_d, 0, None) / (1 - m_d))
    return float(max(np.abs(F - after).max(), np.abs(F_before - before).max()))
