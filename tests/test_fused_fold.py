"""The fused CPU fold of the streaming posterior (toymodels.empirical._fused_fold) against a float64 brute force.

``EmpiricalDenoiser.posterior`` without ``topk`` asks for all the weights and so takes the torch path; these
tests call :func:`toymodels.empirical._torch.streaming_posterior` without extras, which is what the
denoiser's mean, entropy and log normalizer use on CPU, and with ``topk`` (the fused top-k).
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from memgen.pairwise import centred_summary
from toymodels.empirical._fused_fold import fused
from toymodels.empirical._torch import _torch_state, centred_queries, streaming_posterior, streaming_state


def _posterior(x, y, sigma, budget, as_numpy=False):
    c = centred_summary(y)
    store = y.numpy() if as_numpy else y
    return streaming_posterior(x, store, c.center, c.sqnorm, c.radius, sigma, budget=budget)


@pytest.mark.parametrize("as_numpy", [False, True])          # rows read in place, or centred chunk by chunk
def test_float64_equals_brute_force_over_many_chunks(as_numpy, brute):
    g = torch.Generator().manual_seed(5)
    y = torch.randn(37, 6, generator=g, dtype=torch.float64) * 3 + 1
    x = torch.randn(11, 6, generator=g, dtype=torch.float64) * 3
    sigma = torch.logspace(-4, 4, 11, dtype=torch.float64)         # one sigma per query
    assert fused(x)
    budget = 2 * 11 * 6 * 8 + 11 * 4 * 8 + 4 * 6 * 8 + 64       # query buffers + chunks of a few points
    got = _posterior(x, y, sigma, budget, as_numpy)
    for b in range(len(x)):
        w, ent, logz = brute(x[b:b + 1].numpy(), y.numpy(), float(sigma[b]))
        np.testing.assert_allclose(got["mean"][b].numpy(), (w @ y.numpy())[0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got["entropy"][b].item(), ent[0], atol=1e-8)
        np.testing.assert_allclose(got["log_normalizer"][b].item(), logz[0], rtol=1e-10, atol=1e-8)


def _generated(seed, n, d, log_sigma, scale, chunk):
    """``(args, budget, reserved, logit_rounding)`` of :func:`streaming_state` for 5 generated float64 queries
    over n points, in chunks of about ``chunk`` points; ``logit_rounding`` bounds how far two correct
    expansions of ``||u - v||^2 = q - 2 u.v + rest`` in another order may put a logit (a few eps of the
    terms' size over 2 sigma^2: 1e-9 at sigma = 1e-3 and scale 5, e.g. seed 0, n 2, d 1 gave 2.2e-9)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    x = torch.randn(5, d, generator=g, dtype=torch.float64) * scale
    sigma = torch.full((5,), 10.0 ** log_sigma, dtype=torch.float64)
    c = centred_summary(y)
    budget = 2 * 5 * d * 8 + 5 * 5 * chunk * 8 + chunk * d * 8 + 64
    u, lower, offset, reserved = centred_queries(x, c.center, c.radius, budget)
    logit_rounding = 8 * 2.2e-16 * float(u.square().sum(1).max() + c.radius ** 2) / (2 * float(sigma[0]) ** 2)
    return (u, y, c.center, c.sqnorm, offset, sigma), budget, reserved, logit_rounding


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n=st.integers(1, 60), d=st.integers(1, 9), log_sigma=st.floats(-3, 3),
       scale=st.floats(0.01, 100.0), chunk=st.integers(1, 8))
def test_fused_and_torch_states_agree(seed, n, d, log_sigma, scale, chunk):
    """The same state by the two ways of folding a block (float64: to rounding), over generated inputs."""
    args, budget, reserved, logit_rounding = _generated(seed, n, d, log_sigma, scale, chunk)
    a, _ = streaming_state(*args, budget=budget, reserved=reserved, raw=True)
    b, _ = _torch_state(*args, budget=budget, reserved=reserved, raw=True)
    # the states may sit at different maxima only through rounding: compare the normalized quantities
    torch.testing.assert_close(a.m + a.s.log(), b.m + b.s.log(), rtol=1e-12, atol=1e-9 + logit_rounding)
    torch.testing.assert_close(a.acc / a.s.unsqueeze(1), b.acc / b.s.unsqueeze(1), rtol=1e-9, atol=1e-9 * scale)
    torch.testing.assert_close(a.s.log() - a.t / a.s, b.s.log() - b.t / b.s, rtol=0, atol=1e-8)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2 ** 31 - 1), n=st.integers(1, 60), d=st.integers(1, 9), log_sigma=st.floats(-3, 3),
       scale=st.floats(0.01, 100.0), chunk=st.integers(1, 8), k=st.integers(1, 10), raw=st.booleans())
def test_fused_top_k_equals_the_torch_paths(seed, n, d, log_sigma, scale, chunk, k, raw):
    """The top-k of the fused fold: the torch path's logits relative to the largest (min(k, n) of them,
    largest first), at indices whose float64 logits they are (near-ties may come in either order)."""
    args, budget, reserved, logit_rounding = _generated(seed, n, d, log_sigma, scale, chunk)
    u, y, center, _, _, sigma = args
    _, a = streaming_state(*args, budget=budget, reserved=reserved, raw=raw, topk=k)
    _, b = _torch_state(*args, budget=budget, reserved=reserved, raw=raw, topk=k)
    (ra, ia), (rb, _) = a["topk"], b["topk"]
    assert ra.shape == rb.shape == ia.shape == (5, min(k, n))
    torch.testing.assert_close(ra, rb, rtol=1e-12, atol=1e-9 + logit_rounding)
    assert bool((ra[:, 0] == 0).all()) and bool((ra[:, 1:] <= ra[:, :-1]).all())
    logits = -(u.unsqueeze(1) - (y - center).unsqueeze(0)).square().sum(2) / (2 * sigma.unsqueeze(1) ** 2)
    exact = logits.gather(1, ia) - logits.max(1, keepdim=True).values
    torch.testing.assert_close(ra, exact, rtol=1e-12, atol=1e-9 + logit_rounding)


def test_largest_weight_is_one_however_large_the_logits():
    """Queries at |x| = 1e18 in float32 and sigma 1e-4 (logits ~ 1e29): every block's largest weight is
    exactly e^0, so the posterior sits on the nearest point instead of underflowing to 0/0."""
    g = torch.Generator().manual_seed(2)
    y = torch.randn(30, 4, generator=g)
    dirs = torch.randn(3, 4, generator=g)
    x = 1e18 * dirs / dirs.norm(dim=1, keepdim=True)
    ref = y[(y.double().square().sum(1) - 2 * x.double() @ y.double().T).argmin(1)]
    got = _posterior(x, y, torch.full((3,), 1e-4), budget=1 << 20)
    assert torch.isfinite(got["mean"]).all() and (got["entropy"] == 0).all()
    torch.testing.assert_close(got["mean"], ref, rtol=1e-5, atol=1e-5)


def test_no_subnormal_weight_is_written():
    """Weights between float32's subnormal range and 1 are kept, those below its smallest normal number are
    written (and summed) as 0: a subnormal input would slow the next GEMM by orders of magnitude."""
    from toymodels.empirical._fused_fold import fold_block
    tiny = torch.finfo(torch.float32).tiny
    r = torch.linspace(-110.0, 0.0, 2001, dtype=torch.float64)            # relative logits down past -103
    coef = np.array([-0.5])
    g = r.to(torch.float32).unsqueeze(0).contiguous()                     # l = coef (q - 2 g) = r
    q = torch.zeros(2001, dtype=torch.float32)
    m, s, t = np.full(1, -np.inf), np.zeros(1), np.zeros(1)
    fold_block(g, q, coef, m, s, t)
    w = g[0].double()
    assert not ((w > 0) & (w < tiny)).any()
    exact = r.float().double().exp()                                      # the logits as the block holds them
    kept = exact >= tiny
    assert (w[~kept] == 0).all()
    torch.testing.assert_close(w[kept], exact[kept], rtol=2e-7, atol=0)
    np.testing.assert_allclose(s[0], float(exact[kept].sum()), rtol=1e-12)       # s sums the weights in float64


def test_torch_path_feeds_no_subnormal_weight_to_its_gemm():
    """The torch fold (CPU, no autograd: e.g. ``posterior(..., topk)``) also writes weights below float32's
    smallest normal number as 0 before its GEMM, and its state still equals the fused one."""
    from torch.utils._python_dispatch import TorchDispatchMode
    tiny = torch.finfo(torch.float32).tiny
    y = torch.linspace(0.0, 1.0, 400).unsqueeze(1)                   # logits from 0 down to -200
    x, sigma = torch.zeros(1, 1), torch.full((1,), 0.05)
    c = centred_summary(y)
    center, sqnorm = c.center.float(), c.sqnorm.float()
    u, lower, offset, reserved = centred_queries(x, center, c.radius, 1 << 20)
    seen = []

    class Weights(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.addmm_.default):
                w = args[-2]
                if w.shape[1] == y.shape[0] and w.shape[0] == 1:         # weights [1, n] @ points [n, 1]
                    seen.append(w.clone())
            return func(*args, **(kwargs or {}))

    args = (u, y, center, sqnorm, offset, sigma)
    with Weights():
        got, _ = _torch_state(*args, budget=1 << 20, reserved=reserved, topk=3)
    w = torch.cat(seen)
    assert w.numel() > 0 and (w == 0).any() and not ((w > 0) & (w < tiny)).any()
    want, _ = streaming_state(*args, budget=1 << 20, reserved=reserved)
    torch.testing.assert_close(got.acc / got.s.unsqueeze(1), want.acc / want.s.unsqueeze(1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("path", ["fused", "torch"])
def test_products_are_the_centred_dot_products(raw, path):
    """``products`` receives ``u . (y_j - c)`` for every chunk, whichever way the block is folded and whether
    the rows are read in place (``raw``: the GEMM gives ``u . y_j``, less ``u . c``) or centred per chunk;
    the state is the same as without it, to the rounding of ``-2 u.v + q``: the one-call ``addmm`` may round
    it once inside the BLAS kernel (AMD's kernels do), the products path rounds ``u.v`` first, so each logit may
    differ by one unit in the last place of ``|d2|`` and the state by a few ulps of its own scale."""
    g = torch.Generator().manual_seed(7)
    y = torch.randn(29, 5, generator=g, dtype=torch.float64) * 2 + 0.5
    x = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    sigma = torch.full((6,), 0.7, dtype=torch.float64)
    c = centred_summary(y)
    budget = 2 * 6 * 5 * 8 + 6 * 5 * 4 * 8 + 4 * 5 * 8 + 64          # chunks of a few points
    u, lower, offset, reserved = centred_queries(x, c.center, c.radius, budget)
    state = streaming_state if path == "fused" else _torch_state
    products = torch.full((6, 29), np.nan, dtype=torch.float64)
    args = (u, y, c.center, c.sqnorm, offset, sigma)
    got, _ = state(*args, budget=budget, reserved=reserved, raw=raw, products=products)
    want, _ = state(*args, budget=budget, reserved=reserved, raw=raw)
    torch.testing.assert_close(products, u @ (y - c.center).T, rtol=0, atol=1e-12)
    ulp = torch.finfo(torch.float64).eps
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=16 * ulp, atol=16 * ulp * float(b.abs().max()))
