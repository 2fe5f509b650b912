"""Gaussian-equivalence constants and Hermite coefficients of the RF activations."""
import math

import numpy as np
import pytest
import sympy as sp
from scipy import integrate

from toymodels.rf import ge_constants, get_activation
from toymodels.rf.activations import hermite_table

NAMES = ("mu0", "a", "b", "v2", "s2")


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("t", [0.01, 0.3, 2.0])
def test_closed_forms_equal_quadrature(activation, t):
    closed = ge_constants(t, activation=activation, sigma_x2=1.7, method="closed")
    quad = ge_constants(t, activation=activation, sigma_x2=1.7, method="quadrature", nodes=400)
    # Gauss-Hermite is exact to ~1e-14 for the smooth erf, and slow (algebraic) across the ReLU kink
    tol = 1e-12 if activation == "erf" else 2e-3
    for name in NAMES:
        assert getattr(quad, name) == pytest.approx(getattr(closed, name), abs=tol)


def test_tanh_quadrature_converged():
    k = ge_constants(0.01, activation="tanh", method="quadrature")
    fine = ge_constants(0.01, activation="tanh", method="quadrature", nodes=800)
    for name in NAMES:
        assert abs(getattr(k, name) - getattr(fine, name)) < 1e-12
        assert k.error.get(name, 0.0) < 1e-10
    # odd activation: no mean, and b = sqrt(Delta) a (Stein)
    assert abs(k.mu0) < 1e-14 and k.b == pytest.approx(math.sqrt(k.delta) * k.a, rel=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "relu", "erf"])
def test_quadrature_equals_monte_carlo_within_error(activation):
    exact = ge_constants(0.05, activation=activation)
    mc = ge_constants(0.05, activation=activation, method="mc", samples=400_000, seed=3)
    for name in NAMES:
        se = mc.error[name]
        assert abs(getattr(mc, name) - getattr(exact, name)) < 5 * se + 1e-12, name


def test_relu_constants_against_sympy():
    """The ReLU one-dimensional expectations, integrated symbolically."""
    z = sp.symbols("z", real=True)
    g = sp.symbols("Gamma", positive=True)
    phi = sp.exp(-z ** 2 / 2) / sp.sqrt(2 * sp.pi)
    mu0 = sp.simplify(sp.integrate(g * z * phi, (z, 0, sp.oo)))
    f2 = sp.simplify(sp.integrate((g * z) ** 2 * phi, (z, 0, sp.oo)))
    a = sp.simplify(sp.integrate(g * z * z * phi, (z, 0, sp.oo)) / g)
    for t, sx2 in ((0.01, 1.0), (0.7, 2.5)):
        k = ge_constants(t, activation="relu", sigma_x2=sx2)
        gam = math.sqrt(k.gamma2)
        assert k.mu0 == pytest.approx(float(mu0.subs(g, gam)), rel=1e-14)
        assert k.second_moment == pytest.approx(float(f2.subs(g, gam)), rel=1e-14)
        assert k.a == pytest.approx(float(a.subs(g, gam)), rel=1e-14)


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
def test_hermite_coefficients_against_adaptive_quadrature(activation):
    f = get_activation(activation)
    kmax = 6
    gauss = 1 / math.sqrt(2 * math.pi)
    for m, s in ((0.3, 0.2), (-1.1, 0.9), (2.0, 1.3)):
        lower = -m / s if activation == "relu" else -np.inf  # ReLU vanishes below its kink

        def reference(g):
            return integrate.quad(lambda z: g(z) * math.exp(-z * z / 2) * gauss, lower, np.inf,
                                  epsabs=1e-13, epsrel=1e-13, limit=400)[0]

        got = f.hermite(np.array(m), np.array(s), kmax)
        for k in range(kmax + 1):
            ref = reference(lambda z, k=k: f(np.array(m + s * z)) * hermite_table(np.array(z), k)[k])
            assert got[k] == pytest.approx(ref, abs=1e-10), (m, s, k)
        second = reference(lambda z: f(np.array(m + s * z)) ** 2)
        assert float(f.second_moment(np.array(m), np.array(s))) == pytest.approx(second, abs=1e-10)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="t"):
        ge_constants(0.0)
    with pytest.raises(ValueError, match="t"):
        ge_constants(-1.0)
    with pytest.raises(ValueError, match="sigma_x2"):
        ge_constants(0.1, sigma_x2=0.0)
    with pytest.raises(ValueError, match="method"):
        ge_constants(0.1, method="nope")
    with pytest.raises(ValueError, match="closed form"):
        ge_constants(0.1, activation="tanh", method="closed")
    with pytest.raises(ValueError, match="activation"):
        ge_constants(0.1, activation="swish")
