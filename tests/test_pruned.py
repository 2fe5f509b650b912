"""The pruned low-dimension kernel equals the dense float64 kernels to 1e-12 over a sigma grid."""
import numpy as np
import pytest
import torch

import toymodels.empirical._pruned as pruned
from toymodels import EmpiricalDenoiser

SIGMAS = np.logspace(-3, 1, 9)


def _data(kind, d, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "uniform":
        y = torch.rand(3000, d, generator=g, dtype=torch.float64)
        x = torch.rand(120, d, generator=g, dtype=torch.float64)
    else:                                   # tight clusters, queries near, between and far from them
        centres = torch.rand(12, d, generator=g, dtype=torch.float64) * 10
        y = centres[torch.randint(12, (3000,), generator=g)] + 0.01 * torch.randn(3000, d, generator=g,
                                                                                  dtype=torch.float64)
        x = torch.cat([y[:40] + 0.003 * torch.randn(40, d, generator=g, dtype=torch.float64),
                       torch.rand(60, d, generator=g, dtype=torch.float64) * 10,
                       100 * torch.randn(20, d, generator=g, dtype=torch.float64)])
    return y, x


@pytest.mark.parametrize("kind,d", [("uniform", 2), ("clusters", 2), ("clusters", 5)])
def test_pruned_equals_dense(kind, d, monkeypatch):
    y, x = _data(kind, d, d)
    dense = EmpiricalDenoiser(y, kernel="numba")
    gemm = EmpiricalDenoiser(y, kernel="torch")
    model = EmpiricalDenoiser(y, kernel="pruned")
    assert EmpiricalDenoiser(y)._lowdim_kernel() == "pruned"
    pairs = []
    real = pruned.numba_posterior

    def counting(xq, *args, subsets=None):
        pairs.append(len(subsets[0]) if subsets is not None else xq.shape[0] * y.shape[0])
        return real(xq, *args, subsets=subsets)
    monkeypatch.setattr(pruned, "numba_posterior", counting)
    scale = float(y.abs().max())
    for sigma in SIGMAS:
        sig = torch.full((x.shape[0],), sigma, dtype=torch.float64)
        got, ref = model._stats(x, sig), dense._stats(x, sig)
        np.testing.assert_allclose(got["mean"].numpy(), ref["mean"].numpy(), rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(got["log_normalizer"].numpy(), ref["log_normalizer"].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got["entropy"].numpy(), ref["entropy"].numpy(), rtol=0, atol=1e-11)
        np.testing.assert_allclose(got["mean"].numpy(), gemm._stats(x, sig)["mean"].numpy(), rtol=0,
                                   atol=1e-9 * scale)
    # the small sigmas were pruned: far fewer pairs than the dense m n
    assert pairs[0] < 0.05 * x.shape[0] * y.shape[0]


def test_cut_radius_bounds_the_dropped_weight():
    """Outside the cut radius every weight is below e^-(log n + margin) of the largest, by construction."""
    rng = np.random.default_rng(0)
    y = rng.random((500, 2))
    x = rng.random((30, 2))
    for sigma in [1e-3, 1e-2, 0.1]:
        d = np.linalg.norm(x[:, None] - y[None], axis=2)
        r = pruned.cut_radius(d.min(1), np.full(30, sigma), 500)
        rel = np.exp(-(d ** 2 - d.min(1, keepdims=True) ** 2) / (2 * sigma ** 2))
        outside = d > r[:, None]
        assert (rel[outside] <= np.exp(-np.log(500) - pruned.TAIL_MARGIN) * (1 + 1e-12)).all()


def test_chunked_ball_queries_change_nothing(monkeypatch):
    """Pruned queries taken a few at a time (tiny CHUNK_POINTS) give the same bits as all at once."""
    y, x = _data("clusters", 2, 7)
    model = EmpiricalDenoiser(y, kernel="pruned")
    sig = torch.full((x.shape[0],), 3e-3, dtype=torch.float64)
    whole = model._stats(x, sig)
    calls = []
    real = pruned.numba_posterior

    def counting(xq, *args, subsets=None):
        calls.append(subsets is not None)
        return real(xq, *args, subsets=subsets)
    monkeypatch.setattr(pruned, "numba_posterior", counting)
    monkeypatch.setattr(pruned, "CHUNK_POINTS", int(pruned.PRUNE_FRACTION * y.shape[0]) * 7)
    chunked = model._stats(x, sig)
    assert sum(calls) > 5                       # several chunks went through the tree
    for k in whole:
        torch.testing.assert_close(chunked[k], whole[k], rtol=0, atol=0)
