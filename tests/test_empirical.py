"""Empirical (optimal) denoiser against an independent float64 brute-force reference."""
import numpy as np
import pytest
import torch

from memgen import score
from toymodels import EmpiricalDenoiser, SmoothedDenoiser

SIGMAS = [1e-4, 1e-2, 0.3, 1.0, 10.0, 1e4]
SHAPES = [(7, (2,)), (31, (5,)), (50, (3, 4, 4)), (1, (3,))]


@pytest.mark.parametrize("n,shape", SHAPES)
@pytest.mark.parametrize("kernel", ["torch", "numba"])
def test_float64_equals_brute_force(n, shape, kernel, brute):
    g = torch.Generator().manual_seed(n)
    y = torch.randn(n, *shape, generator=g, dtype=torch.float64) * 3
    x = torch.randn(9, *shape, generator=g, dtype=torch.float64) * 3
    # a tiny budget (query buffers + chunks of 3 points) forces many chunks: the rescaling must be exact
    d = int(np.prod(shape))
    model = EmpiricalDenoiser(y, dtype=torch.float64, kernel=kernel, budget=3 * 9 * d * 8 + 2 * 9 * 3 * 8)
    for sigma in SIGMAS:
        w, ent, logz = brute(x.numpy(), y.numpy(), sigma)
        ref = (w @ y.reshape(n, -1).numpy()).reshape(x.shape)
        got = model(x, sigma)
        assert not torch.isnan(got).any()
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-9, rtol=1e-9)
        post = model.posterior(x, sigma)
        np.testing.assert_allclose(post.entropy.numpy(), ent, atol=1e-8)
        np.testing.assert_allclose(post.log_normalizer.numpy(), logz, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(post.weights.numpy(), w, atol=1e-10)


def test_sigma_limits_nearest_point_and_mean():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(40, 6, generator=g, dtype=torch.float64)
    x = 50 * torch.randn(12, 6, generator=g, dtype=torch.float64)     # far away: all logits ~ -1e11
    model = EmpiricalDenoiser(y, dtype=torch.float64)
    nearest = y[torch.cdist(x, y).argmin(1)]
    got = model(x, 1e-4)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, nearest, rtol=0, atol=1e-12)
    # sigma -> inf: weights -> 1/n up to O(||x - y||^2 / sigma^2) ~ 2500 / 1e8
    torch.testing.assert_close(model(x, 1e4), y.mean(0).expand_as(x), rtol=0, atol=1e-4)


def test_numba_and_torch_kernels_agree_low_dim():
    g = torch.Generator().manual_seed(2)
    y = torch.rand(500, 2, generator=g, dtype=torch.float64) * 10
    x = torch.rand(64, 2, generator=g, dtype=torch.float64) * 10
    sig = torch.logspace(-3, 2, 64, dtype=torch.float64)
    a = EmpiricalDenoiser(y, dtype=torch.float64, kernel="numba")
    b = EmpiricalDenoiser(y, dtype=torch.float64, kernel="torch", budget=3 * 64 * 2 * 8 + 2 * 64 * 7 * 8)
    torch.testing.assert_close(a(x, sig), b(x, sig), rtol=0, atol=1e-10)
    sa, sb = a._stats(x, sig), b._stats(x, sig)
    torch.testing.assert_close(sa["entropy"], sb["entropy"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("kernel", ["torch", "numba"])
def test_float32_within_rounding_bound(kernel, brute):
    """float32 tolerance, from the rounding of the logits.

    The squared distances carry an absolute error of about ``c * eps32 * R^2`` (R: the largest norm
    of a centred point or query, c ~ a few for the GEMM expansion), so each logit is off by
    ``~ c eps32 R^2 / (2 sigma^2)`` and the mean by at most twice that times the spread 2R of the
    points, plus the rounding ``eps32 R`` of the result itself. We assert with c = 10.
    """
    g = torch.Generator().manual_seed(3)
    d = 2 if kernel == "numba" else 16
    y = torch.randn(200, d, generator=g, dtype=torch.float64) + 5.0    # uncentred on purpose
    x = torch.randn(40, d, generator=g, dtype=torch.float64) + 5.0
    m32 = EmpiricalDenoiser(y, kernel=kernel)
    R = float(torch.cat([y, x]).sub(y.mean(0)).norm(dim=1).max())
    eps = float(torch.finfo(torch.float32).eps)
    for sigma in [0.3, 1.0, 3.0, 30.0]:
        w, _, _ = brute(x.numpy(), y.numpy(), sigma)
        ref = w @ y.numpy()
        bound = 10 * eps * (R ** 2 / sigma ** 2 * 2 * R + R + 5.0)
        err = np.abs(m32(x.float(), sigma).double().numpy() - ref).max()
        assert err <= bound, (sigma, err, bound)


def test_topk_posterior_matches_brute_force(brute):
    g = torch.Generator().manual_seed(4)
    y = torch.randn(300, 8, generator=g, dtype=torch.float64)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64)
    model = EmpiricalDenoiser(y, dtype=torch.float64, budget=3 * 5 * 8 * 8 + 2 * 5 * 11 * 8)
    w, ent, _ = brute(x.numpy(), y.numpy(), 0.7)
    post = model.posterior(x, 0.7, topk=5)
    order = np.argsort(-w, axis=1)[:, :5]
    np.testing.assert_array_equal(post.indices.numpy(), order)
    np.testing.assert_allclose(post.weights.numpy(), np.take_along_axis(w, order, 1), atol=1e-12)
    np.testing.assert_allclose(post.effective_number.numpy(), np.exp(ent), rtol=1e-9)


def test_per_sample_sigma_and_numpy_in_numpy_out(brute):
    y = np.random.default_rng(5).normal(size=(20, 3))
    x = np.random.default_rng(6).normal(size=(4, 3))
    sig = np.array([0.1, 0.5, 1.0, 5.0])
    model = EmpiricalDenoiser(y, dtype=torch.float64)
    out = model(x, torch.as_tensor(sig))
    assert isinstance(out, np.ndarray) and out.shape == x.shape
    for b in range(4):
        w, _, _ = brute(x[b:b + 1], y, sig[b])
        np.testing.assert_allclose(out[b], (w @ y)[0], atol=1e-10)


def test_budget_too_small_for_the_queries_is_refused():
    with pytest.raises(ValueError, match="budget"):
        EmpiricalDenoiser(torch.randn(10, 4), kernel="torch", budget=100)(torch.randn(8, 4), 1.0)


def test_gradients_flow_through_x():
    y = torch.randn(10, 2, dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    EmpiricalDenoiser(y, dtype=torch.float64, kernel="torch")(x, 0.5).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_is_a_module_like_any_other():
    """``.eval()``/``.train()`` work (nn.Module.train is not shadowed) and the training points come back as given."""
    y = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    for model in (EmpiricalDenoiser(y), SmoothedDenoiser(y, 0.5)):
        assert model.eval() is model and not model.training
        assert model.train() is model and model.training
        torch.testing.assert_close(model.train_points, y)


def _central_difference(f, x, h=1e-6):
    """``d f(x).sum() / d x`` by central differences, one coordinate at a time (float64)."""
    grad = torch.zeros_like(x)
    for i in range(x.numel()):
        e = torch.zeros_like(x).reshape(-1)
        e[i] = h
        e = e.reshape(x.shape)
        grad.reshape(-1)[i] = (f(x + e).sum() - f(x - e).sum()) / (2 * h)
    return grad


@pytest.mark.parametrize("d", [2, 8])
@pytest.mark.parametrize("smoothed", [False, True])
def test_autograd_through_the_default_kernel_is_the_gradient_of_the_exact_score(d, smoothed):
    """The default kernel (numba/pruned on CPU for d <= 8) cannot carry autograd: a call that needs it takes
    torch's operations, so the gradient of the score is the true one (not -1/sigma^2 of a detached D)."""
    g = torch.Generator().manual_seed(d)
    y = torch.randn(30, d, generator=g, dtype=torch.float64)
    x0 = torch.randn(3, d, generator=g, dtype=torch.float64) * 0.7

    def make(**kw):
        return SmoothedDenoiser(y, 0.4, **kw) if smoothed else EmpiricalDenoiser(y, **kw)

    model, reference = make(), make(kernel="torch")
    assert model.kernel == "auto" and model._lowdim_kernel() == "pruned"
    x = x0.clone().requires_grad_()
    score(model, x, 0.7).sum().backward()
    with torch.no_grad():
        fd = _central_difference(lambda z: score(model, z, 0.7), x0)
    np.testing.assert_allclose(x.grad.numpy(), fd.numpy(), rtol=1e-6, atol=1e-6)
    assert float((x.grad + 1 / 0.7 ** 2).abs().max()) > 1e-2         # not the detached -1/sigma^2
    xr = x0.clone().requires_grad_()
    score(reference, xr, 0.7).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xr.grad.numpy(), rtol=1e-12, atol=1e-12)
    x.grad = None
    model(x, 0.7).sum().backward()                                   # D itself is differentiable
    with torch.no_grad():
        fd = _central_difference(lambda z: model(z, 0.7), x0)
    np.testing.assert_allclose(x.grad.numpy(), fd.numpy(), rtol=1e-6, atol=1e-6)


def test_autograd_flows_through_sigma():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(20, 2, generator=g, dtype=torch.float64)
    x = torch.randn(4, 2, generator=g, dtype=torch.float64)
    model = EmpiricalDenoiser(y)
    sigma = torch.full((4,), 0.6, dtype=torch.float64, requires_grad=True)
    model(x, sigma).sum().backward()
    h = 1e-6
    with torch.no_grad():
        fd = (model(x, 0.6 + h).sum(1) - model(x, 0.6 - h).sum(1)) / (2 * h)
    np.testing.assert_allclose(sigma.grad.numpy(), fd.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kernel", ["auto", "torch", "numba"])
def test_tiny_sigma_on_float64_data_gives_the_nearest_training_point(kernel):
    """sigma = 1e-9: D* is the nearest training point (its sigma -> 0 limit), the smoothed denoiser
    tends to x, and sampling down to 1e-9 lands on training points. Once the KD-tree's cut ball rounded to
    the nearest distance itself and lost the nearest point: a false 'overflow' error."""
    from memgen import edm_sigmas, sample, score
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5000, 2, generator=g, dtype=torch.float64) + 3
    x = torch.randn(300, 2, generator=g, dtype=torch.float64)
    nearest = y[torch.cdist(x, y).argmin(1)]
    model = EmpiricalDenoiser(y, kernel=kernel)
    torch.testing.assert_close(model(x, 1e-9), nearest, rtol=0, atol=0)
    torch.testing.assert_close(score(model, x, 1e-9), (nearest - x) / 1e-18, rtol=1e-12, atol=0)
    torch.testing.assert_close(SmoothedDenoiser(y, 0.1, kernel=kernel)(x, 1e-9), x, rtol=1e-15, atol=1e-15)
    out = sample(model, x[:20], edm_sigmas(8, sigma_min=1e-9))
    assert float(((out[:, None] - y[None]) ** 2).sum(-1).min(1).values.max()) < 1e-24


@pytest.mark.parametrize("sigma", [0.5, 1e-3, 1e-5, 1e-9])
def test_smoothed_score_is_the_broadened_sets_score_at_every_sigma(sigma):
    """score(D_delta, x, sigma) = (D*(x, s) - x) / s^2 with s^2 = sigma^2 + delta^2 (the training set broadened by
    N(0, delta^2 I), seen at noise sigma): at sigma -> 0 the generic (D_delta - x) / sigma^2 cancels to 0, so the
    smoothed denoiser gives its score directly."""
    g = torch.Generator().manual_seed(3)
    y, x = torch.randn(30, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    delta, s2 = 0.1, sigma ** 2 + 0.1 ** 2
    exact = (EmpiricalDenoiser(y, dtype=torch.float64, kernel="torch")(x, s2 ** 0.5) - x) / s2
    got = score(SmoothedDenoiser(y, delta, dtype=torch.float64), x, sigma)
    assert torch.allclose(got, exact, rtol=1e-10, atol=1e-12)
    assert np.allclose(score(SmoothedDenoiser(y, delta, dtype=torch.float64), x.numpy(), sigma), exact.numpy(),
                       rtol=1e-10, atol=1e-12)
