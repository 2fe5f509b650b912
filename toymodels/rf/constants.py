"""Gaussian-equivalence constants of the random-features score at OU time t.

With ``u, v, w, z`` i.i.d. N(0, 1), ``Delta = 1 - exp(-2t)``, ``c = exp(-t) sigma_x``,
``Gamma^2 = c^2 + Delta`` and ``sigma_x^2 = Tr(Sigma)/d`` (the mean data variance):

* ``mu_0 = E[f(Gamma z)]``                                   (0 for odd activations)
* ``a_t = E[f(c u + sqrt(Delta) v) u] / c = E[f(Gamma z) z] / Gamma``   (Stein)
* ``b_t = E[v f(c u + sqrt(Delta) v)] = sqrt(Delta) a_t``
* ``v_t^2 = E[f(c u + sqrt(Delta) v) f(c u + sqrt(Delta) w)] - mu_0^2 - a_t^2 c^2``
* ``s_t^2 = E[f(Gamma z)^2] - mu_0^2 - a_t^2 c^2 - v_t^2 - b_t^2``

For odd activations these are exactly docs/rf_theory.md's constants; ``mu_0`` (the mean feature, a
rank-one spike ``mu_0^2 1 1^T`` of U) is subtracted so that ReLU fits the same Gaussian-equivalent form.

Methods: ``'quadrature'`` (Gauss-Hermite; the cross moment as the nested integral
``E_u[(E_v f(c u + sqrt(Delta) v))^2]``; error estimated by halving the nodes, which double until
it is below tol), ``'closed'``
(ReLU: arc-cosine kernel ``E[f(h1) f(h2)] = Gamma^2 (sin th + (pi - th) cos th) / (2 pi)``,
``cos th = c^2/Gamma^2``; erf: ``E[erf(h1) erf(h2)] = (2/pi) arcsin(2 C12 / (1 + 2 Gamma^2))``),
``'mc'`` (the authors' Monte Carlo, with delta-method standard errors). ``'auto'`` picks ``'closed'``
where it exists. Gauss-Hermite is slow to converge for kinked activations (ReLU: ~4e-4 at 200
nodes), which is why ReLU uses its closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from memgen.checks import positive
from memgen.noise import ou_delta

from .activations import Activation, gauss_hermite, get_activation

METHODS = ("auto", "quadrature", "closed", "mc")
MAX_NODES = 6400


@dataclass(frozen=True)
class GEConstants:
    """Gaussian-equivalence constants at one OU time (see the module docstring for the formulas)."""

    t: float
    sigma_x2: float
    activation: str
    mu0: float
    a: float
    b: float
    v2: float
    s2: float
    second_moment: float
    method: str = "quadrature"
    error: dict = field(default_factory=dict)

    @property
    def delta(self) -> float:
        """``Delta_t = 1 - exp(-2t)``."""
        return ou_delta(self.t)

    @property
    def c2(self) -> float:
        """``c^2 = exp(-2t) sigma_x^2`` (variance of the signal part of a pre-activation)."""
        return math.exp(-2 * self.t) * self.sigma_x2

    @property
    def gamma2(self) -> float:
        """``Gamma_t^2 = exp(-2t) sigma_x^2 + Delta_t`` (variance of a pre-activation)."""
        return self.c2 + self.delta

    @property
    def alpha2(self) -> float:
        """``a_t^2 exp(-2t)``: the weight of the data term ``W Sigma W^T`` in U."""
        return self.a ** 2 * math.exp(-2 * self.t)

    def as_dict(self) -> dict:
        return {"t": self.t, "sigma_x2": self.sigma_x2, "activation": self.activation, "mu0": self.mu0,
                "a": self.a, "b": self.b, "v2": self.v2, "s2": self.s2, "second_moment": self.second_moment,
                "delta": self.delta, "gamma2": self.gamma2, "method": self.method, "error": dict(self.error)}


def _quadrature(f: Activation, c: float, sd: float, nodes: int) -> dict:
    z, w = gauss_hermite(nodes)
    gamma = math.hypot(c, sd)
    fz = f(gamma * z)
    inner = f(c * z[:, None] + sd * z[None, :]) @ w  # g(u_a) = E_v f(c u_a + sqrt(Delta) v)
    return {"mu0": fz @ w, "a": (fz * z) @ w / gamma, "f2": (fz * fz) @ w, "cross": (inner * inner) @ w}


def _closed(f: Activation, c: float, sd: float) -> dict:
    g2 = c * c + sd * sd
    if f.name == "relu":
        cos = c * c / g2
        th = math.acos(min(1.0, cos))
        return {"mu0": math.sqrt(g2 / (2 * math.pi)), "a": 0.5, "f2": g2 / 2,
                "cross": g2 * (math.sin(th) + (math.pi - th) * cos) / (2 * math.pi)}
    if f.name == "erf":
        return {"mu0": 0.0, "a": 2 / math.sqrt(math.pi) / math.sqrt(1 + 2 * g2),
                "f2": 2 / math.pi * math.asin(2 * g2 / (1 + 2 * g2)),
                "cross": 2 / math.pi * math.asin(2 * c * c / (1 + 2 * g2))}
    raise ValueError(f"method: no closed form for activation {f.name!r}; use method='quadrature'")


def _monte_carlo(f: Activation, c: float, sd: float, samples: int, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    u, v, w, z = rng.standard_normal((4, int(samples)))
    gamma = math.hypot(c, sd)
    fa, fb, fz = f(c * u + sd * v), f(c * u + sd * w), f(gamma * z)
    per = {"mu0": fz, "a": fa * u / c, "b": v * fa, "f2": fz * fz, "cross": fa * fb}
    est = {k: float(x.mean()) for k, x in per.items()}
    # delta method: v2 = cross - mu0^2 - a^2 c^2 ; s2 = f2 - cross - b^2 (mu0 and f2 share the sample z)
    lin_v2 = per["cross"] - 2 * est["a"] * c * c * per["a"] - 2 * est["mu0"] * per["mu0"]
    lin_s2 = per["f2"] - per["cross"] - 2 * est["b"] * per["b"]
    se = {k: float(x.std() / math.sqrt(samples)) for k, x in
          {**per, "v2": lin_v2, "s2": lin_s2}.items()}
    return est, se


def ge_constants(t: float, *, activation="tanh", sigma_x2: float = 1.0, method: str = "auto",
                 nodes: int = 400, tol: float = 1e-12, samples: int = 500_000, seed: int = 0) -> GEConstants:
    """The Gaussian-equivalence constants ``mu_0, a_t, b_t, v_t^2, s_t^2`` at OU time ``t``.

    Args:
        t: OU diffusion time (> 0).
        activation: ``'tanh'`` (default), ``'relu'``, ``'erf'`` or an :class:`Activation`.
        sigma_x2: ``Tr(Sigma)/d``, the mean variance of the data.
        method: ``'auto'`` (default: ``'closed'`` for ReLU and erf, else ``'quadrature'``),
            ``'quadrature'`` (``error`` holds the change when the nodes are halved; the nodes double
            from ``nodes`` until that change is below ``tol`` or they reach 6400),
            ``'closed'`` (ReLU and erf) or ``'mc'`` (``samples`` draws; ``error`` holds standard errors).
        nodes, tol: initial Gauss-Hermite nodes per dimension and target error for ``'quadrature'``.
        samples, seed: Monte Carlo size and seed for ``'mc'``.
    """
    t, sigma_x2 = positive(t, "t"), positive(sigma_x2, "sigma_x2")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    f = get_activation(activation)
    if method == "auto":
        method = "closed" if f.name in ("relu", "erf") else "quadrature"
    c, sd = math.exp(-t) * math.sqrt(sigma_x2), math.sqrt(ou_delta(t))
    error: dict = {}
    if method == "quadrature":
        nodes = int(nodes)
        coarse = _quadrature(f, c, sd, max(2, nodes // 2))
        while True:  # double the nodes until halving them changes nothing above tol (or MAX_NODES)
            raw = _quadrature(f, c, sd, nodes)
            error = {k: abs(raw[k] - coarse[k]) for k in raw}
            if max(error.values()) <= tol or nodes >= MAX_NODES:
                break
            coarse, nodes = raw, 2 * nodes
        error["nodes"] = nodes
    elif method == "closed":
        raw = _closed(f, c, sd)
    else:
        raw, error = _monte_carlo(f, c, sd, int(samples), int(seed))
    mu0, a, f2, cross = (float(raw[k]) for k in ("mu0", "a", "f2", "cross"))
    b = float(raw["b"]) if "b" in raw else sd * a
    v2 = cross - mu0 ** 2 - a * a * c * c
    s2 = f2 - cross - b * b
    if method == "quadrature":
        error["v2"] = error["cross"] + error["mu0"] * 2 * abs(mu0) + error["a"] * 2 * abs(a) * c * c
        error["s2"] = error["f2"] + error["cross"] + 2 * sd * sd * abs(a) * error["a"]
    return GEConstants(t=t, sigma_x2=sigma_x2, activation=f.name, mu0=mu0, a=a, b=b, v2=v2, s2=s2,
                       second_moment=f2, method=method, error=error)
