"""The matrices U, V: Mehler quadrature against brute-force integrals and Monte Carlo."""
import math

import numpy as np
import pytest
import torch

from toymodels.rf import (Losses, RFScore, gaussian_equivalent_problem, ge_constants, get_activation,
                          population_matrices, rf_matrices)
from toymodels.rf.activations import gauss_hermite


def _problem(d=6, p=5, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((p, d)), rng.standard_normal((n, d))


def _brute_force_U(W, X, t, f, nodes=120):
    """Each entry as an explicit two-dimensional Gauss-Hermite product rule (float64)."""
    p, d = W.shape
    delta = -math.expm1(-2 * t)
    z, w = gauss_hermite(nodes)
    K = delta * W @ W.T / d
    U = np.zeros((p, p))
    for x in X:
        m = math.exp(-t) * W @ x / math.sqrt(d)
        for i in range(p):
            for j in range(p):
                si, sj = math.sqrt(K[i, i]), math.sqrt(K[j, j])
                r = K[i, j] / (si * sj)
                z2 = r * z[:, None] + math.sqrt(max(1 - r * r, 0.0)) * z[None, :]
                U[i, j] += w @ (f(m[i] + si * z[:, None]) * f(m[j] + sj * z2)) @ w
    return U / len(X)


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_mehler_U_equals_brute_force(activation):
    W, X = _problem()
    t = 0.3
    got = rf_matrices(W, X, t, activation=activation, method="quadrature")
    ref = _brute_force_U(W, X, t, get_activation(activation))
    assert got.error < 1e-9
    np.testing.assert_allclose(got.U, ref, atol=1e-11)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_U_V_equal_monte_carlo_within_error(activation):
    W, X = _problem(d=8, p=7, n=5, seed=1)
    t = 0.2
    exact = rf_matrices(W, X, t, activation=activation, method="quadrature")
    mc = rf_matrices(W, X, t, activation=activation, method="mc", draws=20_000, seed=4)
    assert np.abs(mc.U - exact.U).max() < 5 * mc.error
    # V by Stein's lemma against the Monte Carlo average of phi xi^T (per-entry sd <= sqrt(E f^2 / (nM)))
    sd = math.sqrt(np.diag(exact.U).max() / (5 * 20_000))
    assert np.abs(mc.V - exact.V).max() < 5 * sd


def test_population_matrices_equal_monte_carlo():
    rng = np.random.default_rng(2)
    d, p, t = 10, 6, 0.1
    W = rng.standard_normal((p, d))
    cov = rng.uniform(0.5, 1.5, d)
    pop = population_matrices(W, t, cov)
    N = 400_000
    delta = -math.expm1(-2 * t)
    x0 = rng.standard_normal((N, d)) * np.sqrt(cov)
    xi = rng.standard_normal((N, d))
    phi = np.tanh((math.exp(-t) * x0 + math.sqrt(delta) * xi) @ W.T / math.sqrt(d))
    U_mc, V_mc = phi.T @ phi / N, phi.T @ xi / N
    sd = 1 / math.sqrt(N)  # |tanh| <= 1, |xi| entries have unit variance
    assert np.abs(U_mc - pop["U"]).max() < 5 * sd
    assert np.abs(V_mc - pop["V"]).max() < 5 * sd
    assert pop["trace_inv"] == pytest.approx(np.sum(1 / (math.exp(-2 * t) * cov + delta)), rel=1e-12)


def test_train_loss_formula_equals_direct_average():
    """L = 1 + (Delta/d) Tr(A~ U A~^T) + (2 sqrt(Delta)/d) Tr(A~ V) against (1/nd) sum E||sqrt(Delta) s_A + xi||^2."""
    d, p, n, t = 8, 12, 6, 0.4
    model = RFScore(d, p, t, seed=5)
    gen = torch.Generator().manual_seed(6)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    model.A.copy_(0.3 * torch.randn(d, p, generator=gen, dtype=torch.float64))
    m = model.matrices(X)
    loss = Losses(m.U, m.V, t)(model.A.numpy())["train"]
    delta = -math.expm1(-2 * t)
    M = 20_000
    xi = torch.randn(M, n, d, generator=gen, dtype=torch.float64)
    xt = math.exp(-t) * X + math.sqrt(delta) * xi
    per = ((math.sqrt(delta) * model(xt.reshape(-1, d)) + xi.reshape(-1, d)) ** 2).sum(1) / d
    assert abs(float(per.mean()) - loss) < 5 * float(per.std()) / math.sqrt(M * n)


def test_gaussian_equivalent_population_matches_exact_to_linear_order():
    """With rows |w_i|^2 = d, U_test^GE = a^2 W C_t W^T/d + (v^2 + s^2) I is the Mehler series of the exact
    population U cut after order 1: equal on the diagonal, off it within rho^3 E f^2 (tanh is odd)."""
    rng = np.random.default_rng(3)
    d, p, t = 200, 20, 0.1
    W = rng.standard_normal((p, d))
    W *= math.sqrt(d) / np.linalg.norm(W, axis=1, keepdims=True)
    k = ge_constants(t)
    g = gaussian_equivalent_problem(W, rng.standard_normal((5, d)), k)
    exact = population_matrices(W, t)
    np.testing.assert_allclose(np.diag(g["U_test"]), np.diag(exact["U"]), rtol=1e-12)
    np.testing.assert_allclose(g["V_test"], exact["V"], rtol=1e-12)
    rho = W @ W.T / d
    off = ~np.eye(p, dtype=bool)
    bound = np.abs(rho[off]) ** 3 * k.second_moment
    assert np.all(np.abs(g["U_test"] - exact["U"])[off] <= bound + 1e-14)


def test_bad_input_raises():
    W, X = _problem()
    with pytest.raises(ValueError, match="t"):
        rf_matrices(W, X, 0.0)
    with pytest.raises(ValueError, match="X"):
        rf_matrices(W, X[:, :3], 0.1)
    with pytest.raises(ValueError, match="method"):
        rf_matrices(W, X, 0.1, method="exact")
    with pytest.raises(ValueError, match="Mehler"):
        rf_matrices(np.ones((3, 4)), X[:, :4], 0.1, method="quadrature")  # identical features: correlation 1


def test_auto_falls_back_to_monte_carlo_for_nearly_parallel_features():
    W, X = _problem(d=2, p=6, n=3, seed=4)  # in 2-D some features are almost parallel
    m = rf_matrices(W, X, 0.2, draws=400)
    assert m.method == "mc" and m.info["draws"] == 400 and m.error > 0
    W, X = _problem(d=40, p=10, n=3, seed=4)
    assert rf_matrices(W, X, 0.2).method == "quadrature"
