"""The certified far-field series equals a float64 brute force, is used at large sigma, and its
certificate rejects what it cannot vouch for."""
import numpy as np
import pytest

import toymodels.empirical._pruned as pruned
import toymodels.empirical._far_series as ps
from toymodels.empirical._numba import numba_posterior
from conftest import brute_stats, centre_and_radius

SIGMAS = np.logspace(-3, 1, 9)


@pytest.fixture
def forced(monkeypatch):
    """Whatever the cost rule says, try the series on every candidate (the tests' sizes are small)."""
    monkeypatch.setattr(ps, "DENSE_PAIR_COST", 1e12)


def _check(got, x, y, sigma, rows=slice(None)):
    mean, entropy, logz = brute_stats(x[rows], y.astype(np.float64), sigma[rows])
    scale = float(np.abs(y).max())
    np.testing.assert_allclose(got["mean"], mean, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(got["log_normalizer"], logz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["entropy"], entropy, rtol=0, atol=1e-11)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_series_equals_brute_force_over_the_sigma_grid(d, forced):
    """Every accepted query equals the brute force; at sigma >= 1 on unit-box data most are accepted,
    at sigma = 1e-3 none."""
    rng = np.random.default_rng(d)
    y = rng.random((2000, d))
    x = rng.random((300, d))
    taken_at = {}
    for s in SIGMAS:
        sigma = np.full(300, s)
        taken, out = ps.series_posterior(x, y, *centre_and_radius(y), sigma)
        taken_at[s] = taken.mean()
        if taken.any():
            _check(out, x, y, sigma, taken)
    assert taken_at[SIGMAS[0]] == 0
    assert all(taken_at[s] > 0.9 for s in SIGMAS if s >= 1), taken_at


def test_pruned_kernel_takes_the_series_and_stays_exact(monkeypatch):
    """Through pruned_posterior, with the cost rule as it is: the series answers the large-sigma
    queries, the rest is unchanged."""
    rng = np.random.default_rng(5)
    y = rng.random((20000, 2))
    x = rng.random((600, 2))
    c, R = centre_and_radius(y)
    tree = pruned.build_tree(y)
    counts = []
    real = pruned.series_posterior

    def counting(*args):
        taken, out = real(*args)
        counts.append(int(taken.sum()))
        return taken, out
    monkeypatch.setattr(pruned, "series_posterior", counting)
    for s in SIGMAS:
        sigma = np.full(600, s)
        _check(pruned.pruned_posterior(x, y, tree, c, R, sigma), x, y, sigma)
    assert counts[0] == 0 and min(counts[-3:]) > 0.9 * 600, counts


def test_too_small_a_degree_is_rejected_not_wrong(monkeypatch, forced):
    """Mutation: forcing p far below what the group needs must make the certificate reject the
    queries whose truncation error it cannot bound, and what it still accepts must be right."""
    rng = np.random.default_rng(7)
    y = rng.random((3000, 2))
    x = rng.random((400, 2))
    sigma = np.full(400, 0.4)
    honest, _ = ps.series_posterior(x, y, *centre_and_radius(y), sigma)
    assert honest.mean() > 0.9
    for forced in (2, 8, 14):
        monkeypatch.setattr(ps, "degree", lambda T, k=forced: np.full(T.shape, k))
        taken, out = ps.series_posterior(x, y, *centre_and_radius(y), sigma)
        assert taken.sum() < honest.sum()
        if taken.any():
            _check(out, x, y, sigma, taken)
    monkeypatch.setattr(ps, "degree", lambda T: np.full(T.shape, 2))
    assert not ps.series_posterior(x, y, *centre_and_radius(y), sigma)[0].any()


def test_rounding_bound_rejects_cancelling_sums(monkeypatch, forced):
    """Mutation: with a tolerance below the rounding bound, nothing is accepted."""
    rng = np.random.default_rng(8)
    y = rng.random((1000, 2))
    x = rng.random((200, 2))
    monkeypatch.setattr(ps, "SERIES_TOL", 1e-16)
    assert not ps.series_posterior(x, y, *centre_and_radius(y), np.full(200, 3.0))[0].any()


def test_float32_memmap_and_per_query_sigma(tmp_path, forced):
    """float32 points read from a memory-mapped file; sigma in a few groups of equal values and some
    queries with a sigma of their own (each its own group)."""
    rng = np.random.default_rng(9)
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float32, shape=(3000, 3))
    y[:] = rng.random((3000, 3))
    y.flush()
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    x = rng.random((500, 3))
    sigma = np.concatenate([np.full(200, 2.0), np.full(200, 0.7), rng.uniform(0.5, 5, 100)])
    taken, out = ps.series_posterior(x, y, *centre_and_radius(np.asarray(y)), sigma)
    assert taken.mean() > 0.9
    _check(out, x, y, sigma, taken)
    tree = pruned.build_tree(y)
    _check(pruned.pruned_posterior(x, y, tree, *centre_and_radius(np.asarray(y)), sigma), x, y, sigma)


def test_far_queries_fall_through_without_warnings(forced):
    """Queries up to |x| = 1e20: rejected or never candidates, no NaN, inf or warning; at a huge sigma
    the series may take them, and stays exact."""
    rng = np.random.default_rng(10)
    y = rng.random((2000, 2))
    x = np.concatenate([rng.random((300, 2)), rng.normal(size=(100, 2)) * 10.0 ** rng.uniform(1, 20, (100, 1))])
    c, R = centre_and_radius(y)
    with np.errstate(all="raise"):
        for s in (1e-3, 1.0, 1e3, 1e12):
            sigma = np.full(400, s)
            taken, out = ps.series_posterior(x, y, c, R, sigma)
            assert all(np.isfinite(v).all() for v in out.values())
            got = pruned.merge(taken, out, numba_posterior(x[~taken], y, c, R, sigma[~taken]))
            ref = numba_posterior(x, y, c, R, sigma)
            np.testing.assert_allclose(got["mean"], ref["mean"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(got["log_normalizer"], ref["log_normalizer"], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(got["entropy"], ref["entropy"], rtol=0, atol=1e-11)


def test_monomials_are_the_multi_indices_of_degree_at_most_p():
    for d, p in [(1, 5), (2, 7), (3, 4)]:
        parent, var, power = ps.monomials(d, p)
        alphas = [np.zeros(d, int)]
        for a in range(1, len(parent)):
            e = alphas[parent[a]].copy()
            e[var[a]] += 1
            assert e[var[a]] == power[a] and not e[var[a] + 1:].any()
            alphas.append(e)
        assert len({tuple(a) for a in alphas}) == len(alphas) == ps.math.comb(p + d, d)
        assert max(a.sum() for a in alphas) == p


def test_cost_rule_leaves_lone_sigmas_and_small_problems_to_the_exact_kernels():
    rng = np.random.default_rng(11)
    y = rng.random((20000, 2))
    x = rng.random((600, 2))
    c, R = centre_and_radius(y)
    dist = np.linalg.norm(x - c, axis=1)
    assert ps.plan(dist, R, np.full(600, 2.0), 20000, 2)                    # one group of 600: worth it
    assert not ps.plan(dist, R, rng.uniform(1, 3, 600), 20000, 2)         # 600 groups of one: not
    assert not ps.plan(dist[:5], R, np.full(5, 2.0), 20000, 2)             # 5 queries: not
