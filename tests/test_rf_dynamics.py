"""Closed-form training dynamics against simulated gradient descent, Adam, and exact identities."""
import math

import numpy as np
import pytest
import torch

from toymodels.rf import (ClosedForm, Losses, RFScore, crossing_times, population_matrices, rf_matrices,
                          simulate, true_score_gaussian)


@pytest.fixture(scope="module")
def small():
    """d = 16, p = 24, n = 12, t = 0.1 with 30 fixed noise draws per point (a deterministic loss)."""
    rng = np.random.default_rng(0)
    d, p, n, t = 16, 24, 12, 0.1
    W, X = rng.standard_normal((p, d)), rng.standard_normal((n, d))
    noise = torch.randn(30, n, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mc = rf_matrices(W, X, t, method="mc", noise=noise)
    pop = population_matrices(W, t)
    losses = Losses(mc.U, mc.V, t, pop["U"], pop["V"], pop["trace_inv"])
    return {"W": W, "X": X, "t": t, "noise": noise, "losses": losses}


def test_closed_form_equals_simulated_gradient_descent(small):
    tau = np.geomspace(0.5, 3000, 15)
    dtau = 0.5
    sim = simulate(small["X"], small["W"], small["t"], tau=tau, dtau=dtau, noise=small["noise"],
                   evaluate=small["losses"], progress=False)
    flow = ClosedForm(small["losses"])
    exact = flow.curves(sim["tau"], discrete=True, dtau=dtau)
    for key in ("train", "test", "score_error"):
        np.testing.assert_allclose(sim[key], exact[key], rtol=1e-10, atol=1e-12)
    # gradient flow is the small-step limit: the gap shrinks in proportion to dtau
    cont = flow.curves(sim["tau"])
    gap1 = np.abs(cont["train"] - exact["train"]).max()
    gap2 = np.abs(cont["train"] - flow.curves(sim["tau"], discrete=True, dtau=dtau / 4)["train"]).max()
    assert gap1 > 0 and gap2 < 0.3 * gap1


def test_fresh_noise_gradient_descent_follows_the_closed_form_on_average():
    """With fresh noise the mean of A_k over runs is exactly the discrete closed form (the loss is
    quadratic in A and the noise of step k is independent of A_k)."""
    rng = np.random.default_rng(3)
    d, p, n, t, dtau, steps = 8, 12, 6, 0.1, 2.0, 150
    W, X = rng.standard_normal((p, d)), rng.standard_normal((n, d))
    m = rf_matrices(W, X, t)
    flow = ClosedForm(Losses(m.U, m.V, t))
    runs = np.stack([simulate(X, W, t, tau=[steps * dtau], dtau=dtau, seed=s, progress=False)["A"] for s in range(120)])
    se = runs.std(0, ddof=1) / math.sqrt(len(runs))
    z = (runs.mean(0) - flow.A(steps * dtau, discrete=True, dtau=dtau)) / se
    assert np.abs(z).max() < 5 and np.mean(z ** 2) < 1.5  # chi-square per entry ~ 1


def test_flow_solves_the_gradient_ode(small):
    """dA/dtau = -d^2 dL/dA (finite difference of the closed form against the gradient of the matrices)."""
    L = small["losses"]
    A0 = np.random.default_rng(2).standard_normal((L.d, L.p))
    flow = ClosedForm(L, A0=A0, ridge=0.01)
    tau, h = 37.0, 1e-3
    dA = (flow.A(tau + h) - flow.A(tau - h)) / (2 * h)
    A = flow.A(tau)
    At = A / math.sqrt(L.p)
    grad = (2 * L.delta * At @ (L.U + 0.01 * np.eye(L.p)) + 2 * math.sqrt(L.delta) * L.V.T) / (L.d * math.sqrt(L.p))
    np.testing.assert_allclose(dA, -L.d ** 2 * grad, rtol=1e-6, atol=1e-9)
    # and the curves evaluate the same losses as the direct quadratic forms of A(tau), with A0 and ridge
    curve = flow.curves([tau])
    direct = L(A)
    for key in ("train", "test", "score_error"):
        assert curve[key][0] == pytest.approx(direct[key], rel=1e-10)


def test_score_error_against_monte_carlo_and_denoising_identity():
    d, p, n, t = 12, 20, 30, 0.2
    model = RFScore(d, p, t, seed=3)
    X = torch.randn(n, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    model.fit(X, tau=200.0)
    pop = population_matrices(model.W.numpy(), t)
    m = model.matrices(X)
    out = Losses(m.U, m.V, t, pop["U"], pop["V"], pop["trace_inv"])(model.A.numpy())
    # denoising score matching: L_test = 1 + Delta (E_score - Tr C^-1 / d)
    delta = -math.expm1(-2 * t)
    assert out["test"] == pytest.approx(1 + delta * (out["score_error"] - pop["trace_inv"] / d), rel=1e-12)
    # the score error directly, on fresh samples x_t ~ N(0, I) (Sigma = I is stationary under OU)
    xs = torch.randn(200_000, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    err = ((model(xs) - true_score_gaussian(xs, t)) ** 2).sum(1) / d
    assert abs(float(err.mean()) - out["score_error"]) < 5 * float(err.std()) / math.sqrt(len(xs))


def test_score_error_tends_to_its_positive_minimum_when_n_is_large():
    d, p, t = 40, 40, 0.1
    rng = np.random.default_rng(6)
    W = rng.standard_normal((p, d))
    pop = population_matrices(W, t)
    # the population optimum: min_A E_score = (1/d)[Tr C^-1 - (1/Delta) Tr(V^T U^-1 V)]
    delta = -math.expm1(-2 * t)
    e_min = (pop["trace_inv"] - np.trace(pop["V"].T @ np.linalg.solve(pop["U"], pop["V"])) / delta) / d
    assert e_min > 0.05
    errs = []
    for psi_n in (1, 8, 64):
        X = rng.standard_normal((psi_n * d, d))
        m = rf_matrices(W, X, t)
        L = Losses(m.U, m.V, t, pop["U"], pop["V"], pop["trace_inv"])
        errs.append(ClosedForm(L).curves([np.inf])["score_error"][0])
    assert errs[0] > errs[1] > errs[2] > e_min
    assert errs[2] - e_min < 0.1 * e_min  # excess ~ psi_p/psi_n


def test_adam_reaches_the_same_minimum(small):
    flow = ClosedForm(small["losses"])
    best = flow.curves([np.inf])["train"][0]
    sim = simulate(small["X"], small["W"], small["t"], tau=[4000 * 0.5], dtau=0.5, optimizer="adam", adam_lr=3e-2,
                   noise=small["noise"], evaluate=small["losses"], progress=False)
    assert sim["train"][-1] == pytest.approx(best, abs=1e-5)
    assert sim["train"][-1] >= best - 1e-12


def test_measured_time_scales_of_a_synthetic_curve():
    """tau_gen / tau_mem are the half-way crossings, read off in log tau."""
    tau = np.concatenate([[0.0], np.geomspace(1e-2, 1e6, 801)])
    score = 1 - 0.8 * (1 - np.exp(-tau / 50.0))
    gap = 2.0 * (1 - np.exp(-tau / 1e4))
    m = crossing_times({"tau": tau, "train": np.ones_like(tau), "test": 1 + gap, "score_error": score})
    assert m["tau_gen"] == pytest.approx(50 * math.log(2), rel=2e-3)
    assert m["tau_mem"] == pytest.approx(1e4 * math.log(2), rel=2e-3)


def test_bad_input_raises(small):
    L = small["losses"]
    with pytest.raises(ValueError, match="tau"):
        ClosedForm(L).curves([-1.0])
    with pytest.raises(ValueError, match="A0"):
        ClosedForm(L, A0=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="ridge"):
        ClosedForm(L, ridge=-1)
    with pytest.raises(ValueError, match="optimizer"):
        simulate(small["X"], small["W"], 0.1, tau=[1.0], optimizer="sgd")
    with pytest.raises(ValueError, match="t"):
        simulate(small["X"], small["W"], 0.0, tau=[1.0])
    with pytest.raises(ValueError, match="U"):
        Losses(np.eye(3), np.zeros((4, 2)), 0.1)
