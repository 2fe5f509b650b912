"""The exact kernels stay exact where float32 rounding, far queries or the data's dtype used to break them."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compare import localization, nearest_two
from toymodels import EmpiricalDenoiser, SmoothedDenoiser

SIGMA_GRID = np.logspace(-4, 4, 17)


def test_tied_weights_at_tiny_sigma_are_halves():
    """Two training points at the same distance: exactly 1/2 each at every sigma down to 1e-4 (the
    absolute logits there are ~5e7, whose float32 rounding used to turn both weights into 1)."""
    y = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [-7.0, 3.0]])
    x = torch.tensor([[1.0, 0.0]])
    model = EmpiricalDenoiser(y)
    for sigma in [1e-4, 1e-3, 1e-2]:
        post = model.posterior(x, sigma)
        torch.testing.assert_close(post.weights, torch.tensor([[0.5, 0.5, 0.0, 0.0]]), rtol=0, atol=1e-6)
        top = model.posterior(x, sigma, topk=2)
        torch.testing.assert_close(top.weights, torch.tensor([[0.5, 0.5]]), rtol=0, atol=1e-6)
        assert sorted(top.indices[0].tolist()) == [0, 1]


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 5), seed=st.integers(0, 2 ** 31 - 1))
def test_float32_weights_equal_float64_on_dyadic_sets(d, seed):
    """Integer points (16 of them, so the mean is dyadic) make every float32 distance exact: the float32
    weights must then equal the float64 ones at every sigma in [1e-4, 1e4], ties (frequent on a grid)
    included, and sum to 1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(-8, 9, size=(16, d)).astype(np.float64)
    x = rng.integers(-8, 9, size=(6, d)).astype(np.float64)
    m32, m64 = EmpiricalDenoiser(y.astype(np.float32)), EmpiricalDenoiser(y)
    for sigma in SIGMA_GRID:
        w32 = m32.posterior(x.astype(np.float32), sigma).weights.double()
        w64 = m64.posterior(x, sigma).weights
        assert abs(float(w64.sum(1).sub(1).abs().max())) < 1e-12
        assert float(w32.sum(1).sub(1).abs().max()) < 16 * 16 * 6e-8, sigma
        np.testing.assert_allclose(w32.numpy(), w64.numpy(), rtol=0, atol=1e-5, err_msg=f"sigma={sigma}")
        k32 = m32.posterior(x.astype(np.float32), sigma, topk=3)
        np.testing.assert_allclose(k32.weights.double().numpy(),
                                   np.take_along_axis(w64.numpy(), k32.indices.numpy(), 1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale,offset", [(1.0, 0.0), (1.0, 100.0), (30.0, 0.0)])
def test_float32_weights_sum_to_one_and_rank_like_float64(scale, offset):
    """Generic (non-dyadic) data: the float32 weights sum to 1 at every sigma, and the heaviest point
    is float64's wherever float64's top two logits differ by more than float32 can blur them."""
    g = torch.Generator().manual_seed(int(scale + offset))
    y = torch.randn(300, 7, generator=g, dtype=torch.float64) * scale + offset
    x = torch.randn(20, 7, generator=g, dtype=torch.float64) * scale + offset
    m32, m64 = EmpiricalDenoiser(y.float()), EmpiricalDenoiser(y)
    R2 = float((torch.cat([x, y]) - y.mean(0)).square().sum(1).max())
    for sigma in SIGMA_GRID:
        p32, p64 = m32.posterior(x.float(), sigma), m64.posterior(x, sigma)
        assert float(p32.weights.double().sum(1).sub(1).abs().max()) < 300 * 6e-8, sigma
        # a float32 logit's rounding (distance expansion) plus the weight's own (relative, from exp)
        blur = 20 * 6e-8 * R2 / (2 * sigma ** 2) + 8 * 6e-8
        logits = (p64.weights.log() + p64.log_normalizer.unsqueeze(1))
        top2 = logits.topk(2, dim=1).values
        clear = (top2[:, 0] - top2[:, 1]) > 2 * blur
        assert torch.equal(p32.weights.argmax(1)[clear], p64.weights.argmax(1)[clear]), sigma
        k = m32.posterior(x.float(), sigma, topk=1)
        assert torch.equal(k.indices[clear, 0], p64.weights.argmax(1)[clear])


@pytest.mark.parametrize("as_numpy", [False, True])
def test_dtype_follows_the_data(as_numpy, brute):
    g = torch.Generator().manual_seed(7)
    y = torch.randn(50, 4, generator=g, dtype=torch.float64)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    data = y.numpy() if as_numpy else y
    model = EmpiricalDenoiser(data, kernel="torch")
    assert model.dtype == torch.float64
    w, _, _ = brute(x.numpy(), y.numpy(), 0.7)
    np.testing.assert_allclose(model(x, 0.7).numpy(), w @ y.numpy(), rtol=0, atol=1e-13)
    assert EmpiricalDenoiser(data.astype(np.float32) if as_numpy else y.float()).dtype == torch.float32
    assert EmpiricalDenoiser(data, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("kernel", ["torch", "numba"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_far_queries_find_their_nearest_point(kernel, dtype):
    """``|x| ~ 1e20``: the posterior sits on the point minimizing ``||y||^2 - 2 x.y`` (float64
    reference, no cancellation there), never NaN, never the training mean."""
    g = torch.Generator().manual_seed(11)
    y = torch.randn(40, 3, generator=g, dtype=torch.float64) * 5 + 1
    dirs = torch.randn(6, 3, generator=g, dtype=torch.float64)
    x = 1e20 * dirs / dirs.norm(dim=1, keepdim=True)
    ref = y[(y.square().sum(1) - 2 * x @ y.T).argmin(1)]
    model = EmpiricalDenoiser(y.to(dtype), kernel=kernel)
    for sigma in [1e-4, 1.0, 100.0]:
        got = model(x.to(dtype), sigma)
        torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=1e-5)
    post = model.posterior(x.to(dtype), 1.0)
    assert not torch.isnan(post.weights).any() and not torch.isnan(post.entropy).any()
    torch.testing.assert_close(post.weights.max(1).values.double(), torch.ones(6, dtype=torch.float64))
    assert not torch.isnan(post.log_normalizer).any()
    rows = localization(model, x.to(dtype), [1.0], progress=False)
    assert all(np.isfinite(r["entropy"]) and np.isfinite(r["displacement"]) for r in rows)
    nb = nearest_two(x.to(dtype), y.to(dtype), progress=False)
    assert torch.equal(y[nb.indices[:, 0]], ref)


def test_unrepresentable_logits_raise():
    y = torch.randn(10, 2)
    with pytest.raises(ValueError, match="overflow"):
        EmpiricalDenoiser(y, kernel="torch")(torch.full((1, 2), 1e36), 1e-4)
    with pytest.raises(ValueError, match="overflow"):
        EmpiricalDenoiser(y.double(), kernel="numba")(torch.full((1, 2), 1e200, dtype=torch.float64), 1.0)


@pytest.mark.parametrize("kw,match", [({"budget": "abc"}, "budget"), ({"budget": 0}, "budget"),
                                      ({"budget": 1.5}, "budget"), ({"kernel": "cuda"}, "kernel"),
                                      ({"dtype": torch.float16}, "dtype"), ({"dtype": "float64"}, "dtype")])
def test_bad_constructor_arguments(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        EmpiricalDenoiser(torch.randn(5, 2), **kw)
    with pytest.raises((ValueError, TypeError), match=match):
        SmoothedDenoiser(torch.randn(5, 2), 0.1, **kw)


@pytest.mark.parametrize("call,match", [
    (lambda m: m.posterior(torch.zeros(2, 3), 1.0, topk=0), "topk"),
    (lambda m: m.posterior(torch.zeros(2, 3), 1.0, topk="a"), "topk"),
    (lambda m: m.posterior(torch.zeros(2, 3), 1.0, topk=1.5), "topk"),
    (lambda m: m(torch.zeros(2, 3), 0.0), "sigma"),
    (lambda m: m(torch.zeros(2, 3), -1.0), "sigma"),
    (lambda m: m(torch.zeros(2, 3), float("nan")), "sigma"),
    (lambda m: m(torch.zeros(2, 3), "a"), "sigma"),
    (lambda m: m(torch.zeros(2, 4), 1.0), "x"),
    (lambda m: m(torch.zeros(3), 1.0), "x"),
    (lambda m: nearest_two(torch.zeros(2, 3), torch.randn(5, 3), budget="abc"), "budget"),
    (lambda m: nearest_two(torch.zeros(2, 4), torch.randn(5, 3)), "queries"),
])
def test_bad_call_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(EmpiricalDenoiser(torch.randn(5, 3)))


def test_bad_training_sets():
    with pytest.raises(ValueError, match="train"):
        EmpiricalDenoiser(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="train"):
        EmpiricalDenoiser(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="train"):
        EmpiricalDenoiser(torch.zeros(5))


def test_training_set_is_not_copied(tmp_path):
    y = torch.randn(64, 3, dtype=torch.float64)
    assert EmpiricalDenoiser(y).points.data_ptr() == y.data_ptr()
    path = tmp_path / "train.npy"
    np.save(path, y.numpy())
    mm = np.load(path, mmap_mode="r")
    model = EmpiricalDenoiser(mm, kernel="torch", budget=2 ** 12)    # many chunks read from the file
    assert np.shares_memory(model.store, mm)
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(model(x, 0.3), EmpiricalDenoiser(y, kernel="torch")(x, 0.3), rtol=0, atol=1e-14)
    nb, ref = nearest_two(x, mm, budget=2 ** 12, progress=False), nearest_two(x, y, progress=False)
    assert torch.equal(nb.indices, ref.indices)


def _old_centred_copy_mean(y32, x32, sigma):
    """What the kernel did before it stopped copying: centre a float32 copy, softmax, add the centre back."""
    c = y32.double().mean(0).float()
    v, u = y32 - c, x32 - c
    d2 = (u.square().sum(1, keepdim=True) - 2 * u @ v.T + v.square().sum(1)).clamp(min=0)
    return torch.softmax(-d2 / (2 * sigma ** 2), 1) @ v + c


@pytest.mark.parametrize("data", ["mean100", "images"])
def test_float32_error_no_worse_than_a_centred_copy(data):
    """float32 against float64, on uncentred data (mean 100) and on images in [-1, 1] (d = 192):
    within twice the error of the old centred-copy computation (plus rounding of the result)."""
    g = torch.Generator().manual_seed(5)
    if data == "mean100":
        y = torch.randn(400, 16, generator=g, dtype=torch.float64) + 100
        x = torch.randn(30, 16, generator=g, dtype=torch.float64) + 100
    else:
        y = torch.rand(400, 192, generator=g, dtype=torch.float64) * 2 - 1
        x = (y[:30] + 0.3 * torch.randn(30, 192, generator=g, dtype=torch.float64)).clamp(-1, 1)
    m32, m64 = EmpiricalDenoiser(y.float(), kernel="torch", budget=2 ** 16), EmpiricalDenoiser(y)
    for sigma in [0.05, 0.3, 1.0, 3.0, 30.0]:
        ref = m64(x, sigma)
        new = float((m32(x.float(), sigma).double() - ref).abs().max())
        old = float((_old_centred_copy_mean(y.float(), x.float(), sigma).double() - ref).abs().max())
        assert new <= 2 * old + 4 * 6e-8 * float(y.abs().max()), (sigma, new, old)
