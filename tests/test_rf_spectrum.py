"""Spectral density of U: independent root finder, normalization, asymptotics, empirical spectra."""
import math

import numpy as np
import pytest
from scipy.optimize import root

import toymodels.rf as rf
from toymodels.rf.spectrum import ks_distance, spectral_cdf


def _authors_density(lam, psi_p, psi_n, k, sigma, weights):
    """docs/rf_theory.md's six real equations in (q, r, s), z = lambda - i eps, Levenberg-Marquardt with
    continuation in eps from 100 down to 1e-9, written independently of toymodels.rf.spectrum."""
    al2 = k.a ** 2 * math.exp(-2 * k.t)
    sigma, weights = np.asarray(sigma), np.asarray(weights)

    def eqs(v, eps):
        q, r, s = v[0] + 1j * v[1], v[2] + 1j * v[3], v[4] + 1j * v[5]
        z = lam - 1j * eps
        D = 1 + psi_p / psi_n * al2 * r + psi_p / psi_n * k.v2 * q
        s_hat, r_hat = k.b ** 2 * psi_p + 1 / q, psi_p * al2 / D
        den = s_hat + sigma * r_hat
        e1, e2 = s - np.sum(weights / den), r - np.sum(weights * sigma / den)
        e3 = psi_p * (k.s2 - z) + psi_p * k.v2 / D + (1 - psi_p) / q - s / q ** 2
        return [e1.real, e1.imag, e2.real, e2.imag, e3.real, e3.imag]

    q0 = 1 / (lam + 100j)  # as the authors: -1/z at z = lam - 100i, for lam << 100
    v = [q0.real, q0.imag, q0.real, q0.imag, q0.real, q0.imag]
    for eps in np.geomspace(100, 1e-9, 120):
        v = root(eqs, v, args=(eps,), method="lm", options={"xtol": 1e-15, "ftol": 1e-15}).x
    return abs(v[1]) / math.pi


@pytest.mark.parametrize("psi_p,psi_n,sigma", [(4.0, 1.0, (1.0,)), (2.0, 3.0, (0.5, 1.5))])
def test_vectorized_solver_equals_independent_root_finder(psi_p, psi_n, sigma):
    model = rf.SpectrumModel.build(psi_p, psi_n, 0.01, sigma=sigma)
    lam = np.array([0.01, 0.03, 0.2, 1.0, 3.0])
    rho, sol = rf.continuous_density(lam, model)
    assert sol["converged"].all() and sol["residual"] < 1e-12
    ref = [_authors_density(x, psi_p, psi_n, model.constants, model.sigma, model.weights) for x in lam]
    np.testing.assert_allclose(rho, ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("psi_p,psi_n,sigma,activation", [
    (4.0, 1.0, (1.0,), "tanh"), (2.0, 3.0, (1.0,), "tanh"), (8.0, 2.0, (0.5, 1.5), "tanh"),
    (0.5, 2.0, (1.0,), "erf"), (3.0, 0.5, (0.5, 1.5), "relu")])
def test_density_integrates_to_one(psi_p, psi_n, sigma, activation):
    sp = rf.solve_spectrum(psi_p, psi_n, 0.01, sigma=sigma, activation=activation)
    assert sp.total_mass == pytest.approx(1.0, abs=1e-4)
    assert sp.delta_mass == pytest.approx(max(0.0, 1 - (1 + psi_n) / psi_p), abs=1e-6)
    assert all(b.lo >= sp.delta_location for b in sp.bulks)


def test_bulk_masses_approach_asymptotics():
    """Masses above/below the midpoint of the asymptotic bulk scales v^2 psi_p/psi_n and a^2 e^-2t psi_p."""
    k = rf.ge_constants(0.01)
    errors = []
    for psi_p, psi_n in ((4.0, 1.0), (16.0, 4.0), (64.0, 16.0)):
        sp = rf.solve_spectrum(psi_p, psi_n, 0.01)
        mid = math.sqrt(k.v2 * psi_p / psi_n * k.alpha2 * psi_p)
        F = spectral_cdf(sp, [mid])[0]
        errors.append(max(abs((1 - F) * psi_p - 1), abs((F - sp.delta_mass) * psi_p / psi_n - 1)))
        if psi_p == 64.0:  # the n - d noise directions sit at s^2 + v^2 (1 ± sqrt(psi_p/psi_n))^2
            noise = max(sp.bulks, key=lambda b: b.mass)
            assert noise.mass == pytest.approx((psi_n - 1) / psi_p, rel=1e-4)
            assert noise.lo == pytest.approx(k.s2 + k.v2 * (1 - math.sqrt(psi_p / psi_n)) ** 2, rel=0.1)
            assert noise.hi == pytest.approx(k.s2 + k.v2 * (1 + math.sqrt(psi_p / psi_n)) ** 2, rel=0.1)
    assert errors[0] > 0.2 and errors[1] < 1e-3 and errors[2] < 1e-3


@pytest.mark.parametrize("psi_p,psi_n,sigma", [(2.0, 1.0, (1.0,)), (1.5, 3.0, (1.0,)), (4.0, 1.0, (0.5, 1.5))])
def test_theory_matches_gaussian_equivalent_spectrum(psi_p, psi_n, sigma):
    d = 400
    sp = rf.solve_spectrum(psi_p, psi_n, 0.01, sigma=sigma)
    rng = np.random.default_rng(0)
    p, n = int(psi_p * d), int(psi_n * d)
    W = rng.standard_normal((p, d))
    X = rng.standard_normal((n, d)) * np.sqrt(np.repeat(sigma, d // len(sigma)))
    ev = np.linalg.eigvalsh(rf.gaussian_equivalent_U(W, X, sp.model.constants, seed=1))
    assert ks_distance(ev, sp) < 0.015
    if psi_p == 4.0:  # docs/rf_theory.md: about 0.12 of the eigenvalues above 1 (not 1/psi_p)
        above = 1 - spectral_cdf(sp, [1.0])[0]
        assert above == pytest.approx(0.12, abs=0.01)
        assert np.mean(ev > 1) == pytest.approx(above, abs=0.01)


def test_spectral_time_scales_predict_the_loss_curves():
    """tau_mem = psi_p/(2 Delta <lambda>) over the lowest 1/psi_p of the continuous spectrum, against
    the half-gap time of the exact loss curves of the Gaussian-equivalent model; tau_gen likewise over
    the highest 1/psi_p, against the half-drop time of the score error (ratio ln(2)/2 for a
    quadratic decay exp(-2 tau / tau_gen))."""
    d, psi_p, t = 30, 32, 0.01
    k = rf.ge_constants(t)
    tau = np.concatenate([[0.0], np.geomspace(0.1, 1e8, 400), [np.inf]])
    for psi_n in (3, 6):
        rng = np.random.default_rng(psi_n)
        W, X = rng.standard_normal((psi_p * d, d)), rng.standard_normal((psi_n * d, d))
        g = rf.gaussian_equivalent_problem(W, X, k)
        L = rf.Losses(g["U"], g["V"], t, g["U_test"], g["V_test"], g["trace_inv"])
        measured = rf.crossing_times(rf.ClosedForm(L).curves(tau))
        predicted = rf.relaxation_times(psi_p, psi_n, t)
        assert measured["tau_mem"] == pytest.approx(predicted["tau_mem"], rel=0.25)
        assert measured["tau_gen"] == pytest.approx(math.log(2) / 2 * predicted["tau_gen"], rel=0.25)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="psi_p"):
        rf.solve_spectrum(0.0, 1.0, 0.01)
    with pytest.raises(ValueError, match="psi_n"):
        rf.solve_spectrum(2.0, -1.0, 0.01)
    with pytest.raises(ValueError, match="t"):
        rf.solve_spectrum(2.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        rf.solve_spectrum(2.0, 1.0, 0.01, sigma=(-1.0, 1.0))
    with pytest.raises(ValueError, match="weights"):
        rf.solve_spectrum(2.0, 1.0, 0.01, sigma=(0.5, 1.5), weights=(1.0,))
    with pytest.raises(ValueError, match="psi_p"):
        rf.asymptotic_masses(-2, 1)


@pytest.mark.slow
def test_true_U_approaches_the_theory_as_d_grows():
    """The true U (exact noise expectations) differs from its Gaussian equivalent at finite d: its delta
    peak is spread around s_t^2 by O(s_t^2/sqrt d) and shifted by O(1/d); both shrink as d grows."""
    from toymodels.rf.problems import rf_problem

    sp = rf.solve_spectrum(4.0, 1.0, 0.01)
    s2 = sp.delta_location
    ks, offset, spread = [], [], []
    for d in (100, 200, 300):
        prob = rf_problem(4.0, 1.0, d, 0.01, seed=0)
        ev = np.sort(np.linalg.eigvalsh(prob["losses"].U))
        ks.append(ks_distance(ev, sp, drop_delta=True))
        low = ev[: round(sp.delta_mass * prob["p"])]
        offset.append(abs(low.mean() - s2) / s2)
        spread.append(low.std() / s2)
    assert ks[2] < ks[0] and ks[2] < 0.08
    assert offset[0] > offset[1] > offset[2] and offset[2] < 0.05
    assert spread[0] > spread[1] > spread[2]
