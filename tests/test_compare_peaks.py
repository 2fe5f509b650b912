"""Fitted peaks in log sigma: exact on parabolas, finer than the grid on bumps, intervals that cover."""
import numpy as np
import pytest

from compare.peaks import fitted_peak, gap_peak


def test_parabola_vertex_is_exact_off_the_grid():
    s = np.geomspace(0.01, 100, 17)
    u = np.log(s)
    u0 = np.log(0.7)                                  # between grid points
    vals = np.stack([3 - (u - u0) ** 2, 1 - 2 * (u - u0 - 0.1) ** 2])
    where, height = fitted_peak(s, vals)
    np.testing.assert_allclose(where, [0.7, 0.7 * np.exp(0.1)], rtol=1e-10)
    np.testing.assert_allclose(height, [3, 1], rtol=1e-10)
    w2, _ = fitted_peak(s[::-1], vals[:, ::-1])        # a decreasing grid gives the same peak
    np.testing.assert_allclose(w2, where, rtol=1e-10)


def test_bump_peak_is_finer_than_the_grid_and_edge_cases():
    s = np.geomspace(0.01, 100, 25)                   # grid ratio 1.47
    rng = np.random.default_rng(0)
    for u0 in rng.uniform(np.log(0.1), np.log(10), 20):
        v = np.exp(-0.5 * ((np.log(s) - u0) / 1.2) ** 2)
        where, _ = fitted_peak(s, v)
        assert abs(np.log(where) - u0) < 0.1 * np.log(s[1] / s[0])
    where, height = fitted_peak(s, np.log(s))          # monotone: the end of the grid, not extrapolated
    assert where == pytest.approx(100) and height == pytest.approx(np.log(100))
    assert np.isnan(fitted_peak(s, np.full(25, np.nan))[0])
    with pytest.raises(ValueError, match="values"):
        fitted_peak(s, np.ones(24))


def _errors(u0, n, rng, s):
    bump = 0.5 * np.exp(-0.5 * ((np.log(s) - u0) / 1.0) ** 2)
    e_train = 1 + 0.2 * rng.standard_normal((n, s.size))
    e_val = 1 + bump + 0.2 * rng.standard_normal((n, s.size))
    return e_train, e_val


def test_gap_peak_interval_covers_and_resolves_a_shift_below_one_grid_step():
    s = np.geomspace(0.01, 100, 13)                   # grid ratio 2.15: a 30% shift is well below one step
    rng = np.random.default_rng(1)
    a = gap_peak(*_errors(np.log(1.0), 4000, rng, s), s, n_boot=300, seed=2)
    b = gap_peak(*_errors(np.log(0.7), 4000, rng, s), s, n_boot=300, seed=2)
    assert a["sigma_peak_lo"] < 1.0 < a["sigma_peak_hi"] and b["sigma_peak_lo"] < 0.7 < b["sigma_peak_hi"]
    assert b["sigma_peak_hi"] < a["sigma_peak_lo"]                  # the shift is asserted
    assert a["grid_step"] == pytest.approx(s[1] / s[0])
    assert a["gap_peak"] == pytest.approx(0.5, abs=0.05)       # the parabola flattens a Gaussian bump a little
    with pytest.raises(ValueError, match="e_val"):
        gap_peak(np.ones((5, 13)), np.ones((5, 12)), s)
