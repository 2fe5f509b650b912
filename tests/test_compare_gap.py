"""Denoising error and generalization gap against closed forms and brute-force references."""
import numpy as np
import pytest
import torch

from compare.gap import common_noise, denoising_error, generalization_gap, point_errors
from memgen import Denoiser
from memgen.data import gaussian, gmm
from toy_denoisers import Shift
from toymodels import EmpiricalDenoiser, GaussianDenoiser

SIGMAS = [0.01, 0.3, 2.0, 40.0]


class Identity(Denoiser):
    def forward(self, x, sigma):
        return x.clone()


def test_identity_error_is_sigma_squared_times_noise_power_with_common_draws():
    y = torch.randn(40, 3, 2)
    z = common_noise(40, (3, 2), n_draws=5, seed=7).double()
    sq = point_errors(Identity(), y, SIGMAS, n_draws=5, seed=7, progress=False)
    l2 = point_errors(Identity(), y, SIGMAS, n_draws=5, seed=7, squared=False, progress=False)
    power = z.pow(2).mean((2, 3)).mean(0).numpy()              # (1/K) sum_k ||n_ki||^2 / d per point
    norm = z.reshape(5, 40, -1).norm(dim=2).mean(0).numpy()
    for j, s in enumerate(SIGMAS):
        np.testing.assert_allclose(sq[:, j], s ** 2 * power, rtol=1e-5)
        np.testing.assert_allclose(l2[:, j], s * norm, rtol=1e-5)


def test_denoising_error_rows_and_interval():
    y = torch.randn(200, 4)
    rows = denoising_error(Shift(0.5), y, SIGMAS, seed=1, tags={"model": "shift"}, progress=False)
    assert [r["sigma"] for r in rows] == SIGMAS
    for r in rows:
        assert r["model"] == "shift" and r["n_points"] == 200 and r["n_draws"] == 1
        # ||sigma n + c||^2 / d, exactly 0.25 + sigma^2 |n|^2/d + sigma c mean(n) for the same draws
        assert r["error_lo"] <= r["error"] <= r["error_hi"]
    z = common_noise(200, (4,), seed=1)[0].double()
    assert rows[1]["error"] == pytest.approx(float(((0.3 * z + 0.5) ** 2).mean()), rel=1e-5)


def test_explicit_noise_equals_seeded_noise_and_shapes_are_checked():
    y = torch.randn(10, 3)
    z = common_noise(10, (3,), n_draws=2, seed=3)
    a = point_errors(Shift(1.0), y, SIGMAS, noise=z, progress=False)
    b = point_errors(Shift(1.0), y, SIGMAS, n_draws=2, seed=3, progress=False)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="noise"):
        point_errors(Identity(), y, SIGMAS, noise=torch.randn(9, 3), progress=False)


def test_optimal_denoiser_training_error_vanishes_as_sigma_to_zero_but_validation_does_not():
    ds = gmm(n=120, d=6, seed=2)
    model = EmpiricalDenoiser(ds.train, dtype=torch.float64)
    rows = generalization_gap(model, ds.train, ds.val, [1e-3, 1e-2], dtype=torch.float64, n_draws=2,
                              progress=False)
    y, v = ds.train.double(), ds.val.double()
    nearest = torch.cdist(v, y).min(1).values ** 2 / y.shape[1]   # D* -> nearest training point as sigma -> 0
    for r in rows:
        assert r["e_train"] < 1e-12
        assert r["e_val"] == pytest.approx(float(nearest.mean()), rel=0.05)
        assert r["gap"] > 1e9 and r["gap_lo"] > 1e9
        assert r["abs_gap"] == pytest.approx(r["e_val"] - r["e_train"])


def test_gaussian_population_denoiser_has_no_gap_and_closed_form_error():
    spectrum = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1]
    ds = gaussian(n=1200, spectrum=spectrum, seed=3)
    model = GaussianDenoiser(torch.zeros(6), torch.tensor(spectrum).diag(), dtype=torch.float64)
    rows = generalization_gap(model, ds.train, ds.val, SIGMAS, n_draws=2, level=0.99, progress=False)
    lam = np.asarray(spectrum)
    for r in rows:
        s2 = r["sigma"] ** 2
        exact = float(np.mean(lam * s2 / (lam + s2)))            # trace of the posterior covariance / d
        assert r["gap_lo"] <= 0 <= r["gap_hi"]
        assert r["abs_gap_lo"] <= 0 <= r["abs_gap_hi"]
        assert r["e_train_lo"] <= exact <= r["e_train_hi"]
        assert r["e_val_lo"] <= exact <= r["e_val_hi"]


def test_gap_reproduces_denoising_error_with_the_same_seed():
    ds = gmm(n=60, d=3, seed=4)
    model = EmpiricalDenoiser(ds.train)
    gap = generalization_gap(model, ds.train, ds.val, SIGMAS, seed=9, progress=False)
    tr = denoising_error(model, ds.train, SIGMAS, seed=9, progress=False)
    va = denoising_error(model, ds.val, SIGMAS, seed=10, progress=False)
    for g, t, v in zip(gap, tr, va):
        assert g["e_train"] == t["error"] and g["e_val"] == v["error"]
        # the exact denoiser can return the training point exactly (e_train = 0): the gap divides by the tiniest float
        assert g["gap"] == pytest.approx((v["error"] - t["error"]) / max(t["error"], np.finfo(np.float64).tiny))


def test_bad_input_raises_named_errors():
    y = torch.randn(5, 2)

    class Wrong(Denoiser):
        def forward(self, x, sigma):
            return x[:, :1]

    class Nan(Denoiser):
        def forward(self, x, sigma):
            return x * float("nan")

    with pytest.raises(ValueError, match="sigmas"):
        denoising_error(Identity(), y, [0.1, 0.0], progress=False)
    with pytest.raises(ValueError, match="sigmas"):
        denoising_error(Identity(), y, [], progress=False)
    with pytest.raises(ValueError, match="points"):
        denoising_error(Identity(), torch.randn(0, 2), [0.1], progress=False)
    with pytest.raises(ValueError, match="model"):
        denoising_error(Wrong(), y, [0.1], progress=False)
    with pytest.raises(ValueError, match="model"):
        denoising_error(Nan(), y, [0.1], progress=False)
    with pytest.raises(ValueError, match="n_draws"):
        denoising_error(Identity(), y, [0.1], n_draws=0, progress=False)
    with pytest.raises(ValueError, match="tags"):
        denoising_error(Identity(), y, [0.1], tags={"error": 1}, progress=False)
    with pytest.raises(TypeError, match="tags"):
        denoising_error(Identity(), y, [0.1], tags=["model"], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        denoising_error(Identity(), y, [0.1], batch_size=0, progress=False)
