"""The blocked, vectorized dense kernel equals a float64 brute force, whatever the blocks and tiles."""
import numpy as np
from hypothesis import given, settings, strategies as st

from toymodels.empirical import _numba as pn
from conftest import brute_stats, centre_and_radius


@settings(max_examples=15, derandomize=True, database=None, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 5), st.integers(1, 1500), st.floats(-3.5, 1.5),
       st.sampled_from([np.float32, np.float64]))
def test_dense_equals_brute_force(seed, d, n, log_sigma, dtype):
    """Any n (several blocks and a partial one), d, sigma from deep underflow to flat, float32 or float64 points."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d)).astype(dtype)
    x = rng.normal(size=(37, d)) * 1.5
    sigma = 10.0 ** (log_sigma + rng.uniform(-0.5, 0.5, size=37))
    out = pn.numba_posterior(x, y, *centre_and_radius(y.astype(np.float64)), sigma)
    mean, entropy, logz = brute_stats(x, y.astype(np.float64), sigma)
    scale = float(np.abs(y).max())
    np.testing.assert_allclose(out["mean"], mean, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(out["entropy"], entropy, rtol=0, atol=1e-12 * max(1.0, np.log(n)))
    np.testing.assert_allclose(out["log_normalizer"], logz, rtol=1e-13, atol=1e-13)


def test_blocks_tiles_and_subsets_do_not_change_a_bit():
    """A query's sums run over the same blocks in the same order whether it is alone, in a tile of
    queries, or given all points as an explicit subset: the outputs are identical."""
    rng = np.random.default_rng(1)
    y = rng.random((2 * pn.BLOCK + 77, 2))
    x = rng.random((300, 2))
    sigma = np.full(300, 0.07)
    args = (y, *centre_and_radius(y))
    batch = pn.numba_posterior(x, *args, sigma)
    alone = [pn.numba_posterior(x[i:i + 1], *args, sigma[:1]) for i in range(0, 300, 37)]
    n = y.shape[0]
    subsets = (np.arange(n), np.zeros(300, np.int64), np.full(300, n, np.int64))
    explicit = pn.numba_posterior(x, *args, sigma, subsets=subsets)
    for k in batch:
        np.testing.assert_array_equal(np.concatenate([a[k] for a in alone]), batch[k][::37])
        np.testing.assert_array_equal(explicit[k], batch[k])


def test_subsets_sum_over_their_points_only():
    rng = np.random.default_rng(2)
    y = rng.random((900, 3))
    x = rng.random((5, 3))
    sigma = np.array([0.05, 0.1, 0.3, 1.0, 3.0])
    picks = [rng.choice(900, size=k, replace=False) for k in (1, 40, 512, 513, 900)]
    counts = np.array([len(p) for p in picks])
    stop = np.cumsum(counts)
    out = pn.numba_posterior(x, y, *centre_and_radius(y), sigma, subsets=(np.concatenate(picks), stop - counts, stop))
    for i, p in enumerate(picks):
        mean, entropy, logz = brute_stats(x[i:i + 1], y[p], sigma[i:i + 1])
        np.testing.assert_allclose(out["mean"][i], mean[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(out["entropy"][i], entropy[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(out["log_normalizer"][i], logz[0], rtol=1e-14, atol=1e-14)


def test_a_nearer_point_in_a_later_block_moves_the_sums():
    """The running maximum rises block after block (points ordered from far to near), by factors from
    about 1 down to underflow (exp(-1e4) = 0): the single pass still equals the brute force."""
    rng = np.random.default_rng(3)
    n = 4 * pn.BLOCK + 5
    y = np.linspace(30.0, 0.0, n)[:, None] * np.array([[1.0, 0.0]]) + rng.normal(size=(n, 2)) * 1e-3
    x = np.zeros((4, 2))
    sigma = np.array([0.05, 0.5, 5.0, 50.0])
    out = pn.numba_posterior(x, y, *centre_and_radius(y), sigma)
    mean, entropy, logz = brute_stats(x, y, sigma)
    np.testing.assert_allclose(out["mean"], mean, rtol=0, atol=1e-13 * 30)
    np.testing.assert_allclose(out["entropy"], entropy, rtol=0, atol=1e-11)
    np.testing.assert_allclose(out["log_normalizer"], logz, rtol=1e-13, atol=1e-13)
