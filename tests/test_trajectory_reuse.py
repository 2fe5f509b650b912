"""Heun trajectories that reuse logits after the collapse equal the plain sampler's full passes."""
import numpy as np
import pytest
import torch

from memgen import edm_sigmas, sample
from toymodels import EmpiricalDenoiser, GaussianDenoiser
from toymodels.empirical._reusing_loops import combine, gather_mean, kept_points


def _clustered(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    centres = (0.5 * torch.randn(12, d, generator=g, dtype=torch.float64)).clamp(-1, 1)
    y = centres[torch.randint(12, (n,), generator=g)] + 0.2 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return y.clamp(-1, 1), torch.randn(40, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,d,seed,budget", [(300, 32, 0, 2 ** 18), (200, 96, 1, 2 ** 18), (300, 32, 2, 2 ** 15)])
def test_same_samples_as_full_passes(n, d, seed, budget):
    """Several chunks per pass; with the smallest budget, a products pass also takes its queries in two groups."""
    y, noise = _clustered(n, d, seed)
    model = EmpiricalDenoiser(y, kernel="torch", budget=budget)
    sigmas = edm_sigmas(18, 0.002, 80.0)
    record = []
    got = sample(model, noise, sigmas, reuse=True, record=record)
    ref = sample(model, noise, sigmas)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    assert float((got - ref).abs().max()) < 1e-9                      # float64: far below the stated 1e-5
    assert len(record) == 35 and record[0]["full"] == 40
    full = [r["full"] for r in record]
    assert not all(full)                                              # the collapsed tail reused the logits
    assert any(0 < f < 40 for f in full)                              # some queries collapsed before others
    assert any(r["light"] for r in record)                            # and took products passes meanwhile
    assert all(r["dropped"] <= n * 1e-12 for r in record)             # the certified bound per call
    assert [r["step"] for r in record] == [i for i in range(18) for _ in range(2 if i < 17 else 1)]


def test_reuse_refuses_other_models_and_methods():
    y, noise = _clustered(50, 4, 2)
    with pytest.raises(TypeError, match="reuse"):
        sample(GaussianDenoiser(torch.zeros(4), torch.ones(4)), noise, edm_sigmas(5, 0.01, 10.0), reuse=True)
    with pytest.raises(ValueError, match="reuse"):
        sample(EmpiricalDenoiser(y), noise, edm_sigmas(5, 0.01, 10.0), method="euler", reuse=True)
    with pytest.raises(ValueError, match="tol"):
        sample(EmpiricalDenoiser(y), noise, edm_sigmas(5, 0.01, 10.0), reuse=True, tol=0)


def test_float32_model_matches_its_full_passes_and_float64_points():
    y, noise = _clustered(300, 96, 3)
    y32 = y.float()
    sigmas = edm_sigmas(18, 0.002, 80.0)
    model = EmpiricalDenoiser(y32, kernel="torch", budget=2 ** 18)
    got = sample(model, noise.float(), sigmas, reuse=True)
    ref = sample(model, noise.float(), sigmas)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    exact = sample(EmpiricalDenoiser(y32.double(), kernel="torch"), noise, sigmas)
    nearest = lambda x: torch.cdist(x.double(), y32.double()).argmin(1)     # noqa: E731
    assert torch.equal(nearest(got), nearest(exact)) and torch.equal(nearest(ref), nearest(exact))


@pytest.mark.parametrize("store", ["numpy", "shifted", "half", "bfloat16"])
def test_stores_that_are_centred_per_chunk(store):
    """A numpy store, a set far from the origin (both centred chunk by chunk, not read in place) and
    float16 and bfloat16 stores (their kept rows gathered by torch, not read in place by numba)."""
    y, noise = _clustered(200, 64, 4)
    if store == "shifted":
        y = y + 3.0
    low = {"half": torch.float16, "bfloat16": torch.bfloat16}.get(store)
    if low is not None:
        y = y.to(low).double()                                        # the points the model will hold
    train = y.numpy() if store == "numpy" else y.to(low) if low is not None else y
    model = EmpiricalDenoiser(train, kernel="torch", budget=2 ** 18)
    sigmas = edm_sigmas(12, 0.002, 80.0)
    record = []
    got = sample(model, noise + (3.0 / 80 if store == "shifted" else 0), sigmas, reuse=True, record=record)
    ref = sample(model, noise + (3.0 / 80 if store == "shifted" else 0), sigmas)
    atol = 1e-5 if low is not None else 1e-9                          # a 16-bit store computes in float32
    assert float((got - ref).abs().max()) < atol and not all(r["full"] for r in record)


@pytest.mark.parametrize("foresight", [0, None])
def test_foresight_decides_work_not_result(monkeypatch, foresight):
    """Which pass a query takes follows the kept points the last call foresaw; foreseeing none (every
    query takes a products pass first, and a full pass where that proves wrong) or all (never a products
    pass) changes the work, not the samples."""
    import toymodels.empirical._reusing_sampler as trajectory
    import toymodels.empirical._reusing_loops as kernels

    y, noise = _clustered(300, 32, 5)
    model = EmpiricalDenoiser(y, kernel="torch", budget=2 ** 18)
    sigmas = edm_sigmas(18, 0.002, 80.0)
    kept_points_ = kernels.kept_points

    def foreseeing(s, rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead):
        kept_points_(s, rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead)
        ahead[rows] = foresight if foresight is not None else y.shape[0]

    monkeypatch.setattr(kernels, "kept_points", foreseeing)
    monkeypatch.setattr(trajectory, "SPREAD_MARGIN", np.inf)          # every query searched, spread or not
    record = []
    got = sample(model, noise, sigmas, reuse=True, record=record)
    assert float((got - sample(model, noise, sigmas)).abs().max()) < 1e-9
    light = [r["light"] for r in record]
    if foresight is None:
        assert not any(light)
    else:                                         # after the first call, every pass starts as products only
        assert light[0] == 0 and all(r["light"] == 40 - r["known"] for r in record[1:])
        assert any(r["full"] > 0 for r in record[1:]) and any(r["dense"] < 40 for r in record)


@pytest.mark.parametrize("seed", range(4))
def test_kernels_against_numpy(seed):
    rng = np.random.default_rng(seed)
    B, n, cap = 5, 40, 6
    s = rng.normal(size=(B, n)) * rng.choice([0.1, 10.0], size=(B, 1))
    vsq = rng.uniform(0, 3, size=n)
    cut = -float(rng.uniform(0.5, 30))
    ahead_cut = cut * float(rng.uniform(0, 1))                         # a smaller sigma keeps fewer points
    idx, rel, top, count = np.zeros((B, cap), np.int64), np.zeros((B, cap)), np.zeros(B), np.full(B, -1)
    ahead = np.full(B, -1)
    rows = np.array([4, 0, 2])
    kept_points(s, rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead)
    z = 2 * s - vsq
    np.testing.assert_array_equal(top[rows], z[rows].max(1))
    assert (count[[1, 3]] == -1).all() and (idx[[1, 3]] == 0).all()  # rows not asked for are left alone
    assert (ahead[[1, 3]] == -1).all()
    for r in rows:
        want = np.flatnonzero(z[r] - z[r].max() >= cut)
        assert count[r] == want.size
        assert ahead[r] == np.count_nonzero(z[r] - z[r].max() >= ahead_cut)
        k = min(cap, want.size)
        np.testing.assert_array_equal(idx[r, :k], want[:k])
        np.testing.assert_allclose(rel[r, :k], z[r, want[:k]] - z[r].max(), rtol=0, atol=1e-12)
    rows = np.array([3, 0])
    gram = rng.normal(size=(7, n))
    gidx, gcoef = rng.integers(0, 7, size=(2, 3)), rng.normal(size=(2, 3))
    gcoef[1, 2] = 0.0
    x, y = rng.normal(size=(B, n)), rng.normal(size=(B, n))
    want = x.copy()
    want[rows] = 0.7 * x[rows] - 0.2 * y[rows] - np.einsum("ik,ikj->ij", gcoef, gram[gidx])
    combine(x, x, 0.7, y, -0.2, rows, gidx, gcoef, gram)                 # in place, as the sampler does
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_mean_against_numpy(dtype):
    rng = np.random.default_rng(7)
    y = rng.normal(size=(30, 9)).astype(dtype)
    idx, w = rng.integers(0, 30, size=(4, 5)), rng.uniform(size=(4, 5))
    count, rows = np.array([5, 0, 3, 1]), np.array([2, 0, 1])
    out = np.full((3, 9), np.nan)
    gather_mean(y, rows, idx, w, count, out)
    for i, r in enumerate(rows):
        want = sum((w[r, k] * y[idx[r, k]].astype(np.float64) for k in range(count[r])), np.zeros(9))
        np.testing.assert_allclose(out[i], want, rtol=0, atol=1e-14)


def test_duplicated_points_are_never_carried_and_still_exact():
    """Each training point twice: a posterior never collapses below two points, so at d = 32 (at most one
    kept point carried) no query is carried; the tail runs on products passes (n = 200 gathers up to two
    points), equal to the full passes."""
    y, noise = _clustered(100, 32, 6)
    model = EmpiricalDenoiser(torch.cat([y, y]), kernel="torch", budget=2 ** 18)
    sigmas = edm_sigmas(18, 0.002, 80.0)
    record = []
    got = sample(model, noise, sigmas, reuse=True, record=record)
    assert float((got - sample(model, noise, sigmas)).abs().max()) < 1e-9
    assert not any(r["carried"] for r in record) and min(r["kept"] for r in record) == 2
    assert record[-1]["light"] == 40 and record[-1]["full"] == 0
