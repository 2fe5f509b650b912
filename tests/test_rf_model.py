"""The RF score behind the Denoiser contract (OU -> canonical sigma conversion)."""
import math

import numpy as np
import pytest
import torch

from memgen import score
from memgen.noise import ou_to_ve
from toymodels.gaussian import GaussianDenoiser
from toymodels.rf import Activation, RFDenoiser, RFScore, rf_matrices

IDENTITY = Activation("identity", lambda x: x, lambda x: x)


def test_linear_features_reproduce_the_exact_gaussian_denoiser():
    """With f(x) = x and A = -sqrt(p d) W^+ the score is -x: the OU score of N(0, I) data at any t,
    so the wrapper must give the exact denoiser of N(0, I), D = x / (1 + sigma^2)."""
    d, p, t = 5, 9, 0.3
    model = RFScore(d, p, t, activation=IDENTITY, seed=1)
    model.A.copy_(-math.sqrt(p * d) * torch.linalg.pinv(model.W))
    den = RFDenoiser(model)
    sigma = float(ou_to_ve(t)[1])
    x = torch.randn(7, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = GaussianDenoiser(torch.zeros(d), 1.0, dtype=torch.float64)(x, sigma)
    torch.testing.assert_close(den(x, sigma), ref, rtol=1e-10, atol=1e-12)
    # Tweedie view: the canonical score is exp(-t) s_A(exp(-t) x)
    torch.testing.assert_close(score(den, x, sigma), math.exp(-t) * model(math.exp(-t) * x), rtol=1e-10, atol=1e-12)


def test_other_noise_levels_raise_and_inputs_are_checked():
    model = RFScore(4, 6, 0.1, seed=0)
    den = RFDenoiser(model)
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma_t"):
        den(x, 2 * den.sigma_t)
    with pytest.raises(ValueError, match="sigma_t"):
        den(x, torch.tensor([den.sigma_t, den.sigma_t, 1.0], dtype=torch.float64))
    out = den(x.numpy(), np.full(3, den.sigma_t))  # numpy in, numpy out; a [B] sigma accepted
    assert isinstance(out, np.ndarray) and out.shape == (3, 4)
    with pytest.raises(ValueError, match="x"):
        den(torch.randn(3, 5, dtype=torch.float64), den.sigma_t)
    with pytest.raises(ValueError, match="t"):
        RFScore(4, 6, 0.0)
    with pytest.raises(ValueError, match="p"):
        RFScore(4, 0, 0.1)
    with pytest.raises(TypeError, match="score"):
        RFDenoiser("not a model")


def test_seeds_fix_the_features():
    a, b, c = RFScore(5, 7, 0.2, seed=3), RFScore(5, 7, 0.2, seed=3), RFScore(5, 7, 0.2, seed=4)
    assert torch.equal(a.W, b.W) and not torch.equal(a.W, c.W)


def test_fit_reaches_a_stationary_point_of_the_training_loss():
    d, p, t = 6, 10, 0.2
    model = RFScore(d, p, t, seed=5)
    X = torch.randn(8, d, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    model.fit(X, method="mc", draws=50, seed=7)
    m = rf_matrices(model.W.numpy(), X, t, method="mc", draws=50, seed=7)
    delta = -math.expm1(-2 * t)
    At = model.A.numpy() / math.sqrt(p)
    grad = At @ m.U + m.V.T / math.sqrt(delta)  # proportional to dL/dA
    assert np.abs(grad).max() < 1e-9 * np.abs(m.V).max() / math.sqrt(delta)
