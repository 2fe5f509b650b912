"""Bad input raises a ValueError/TypeError that names the problem, before any deep torch error."""
import numpy as np
import pytest
import torch

from memgen import score
from memgen.data import circle, gaussian, gmm, load
from toymodels import EmpiricalDenoiser, GaussianDenoiser, GMMDenoiser, SmoothedDenoiser

TRAIN = torch.randn(10, 3)


def models():
    return [EmpiricalDenoiser(TRAIN), SmoothedDenoiser(TRAIN, 0.5), GaussianDenoiser.fit(TRAIN),
            GMMDenoiser([1, 1], torch.randn(2, 3), [1.0, 1.0])]


@pytest.mark.parametrize("model", models(), ids=lambda m: type(m).__name__)
def test_bad_inputs_to_every_denoiser(model):
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="sigma.*> 0"):
        model(x, 0.0)
    with pytest.raises(ValueError, match="sigma.*> 0"):
        model(x, torch.tensor([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="sigma.*NaN"):
        model(x, float("nan"))
    with pytest.raises(ValueError, match="sigma.*shape"):
        model(x, torch.ones(3))
    with pytest.raises(ValueError, match="x.*NaN"):
        model(torch.full((2, 3), float("nan")), 1.0)
    with pytest.raises(ValueError, match="x.*does not match"):
        model(torch.randn(4, 5), 1.0)
    with pytest.raises(ValueError, match="x.*batch"):
        model(torch.randn(3), 1.0)
    with pytest.raises(TypeError, match="x"):
        model("not an array", 1.0)


def test_bad_training_sets_and_parameters():
    with pytest.raises(ValueError, match="train.*empty"):
        EmpiricalDenoiser(torch.empty(0, 3))
    with pytest.raises(ValueError, match="train.*NaN"):
        EmpiricalDenoiser(torch.tensor([[0.0, float("inf")]]))
    with pytest.raises(ValueError, match="train"):
        EmpiricalDenoiser(torch.randn(5))
    with pytest.raises(ValueError, match="delta"):
        SmoothedDenoiser(TRAIN, -1.0)
    with pytest.raises(ValueError, match="kernel"):
        EmpiricalDenoiser(TRAIN, kernel="cuda")
    with pytest.raises(TypeError, match="dtype"):
        EmpiricalDenoiser(TRAIN, dtype=torch.float16)
    with pytest.raises(ValueError, match="topk"):
        EmpiricalDenoiser(TRAIN).posterior(torch.randn(2, 3), 1.0, topk=0)
    with pytest.raises(ValueError, match="cov: covariance is not positive semi-definite"):
        GaussianDenoiser(np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match="weights"):
        GMMDenoiser([1.0], torch.zeros(2, 2), [1.0, 1.0])
    with pytest.raises(ValueError, match="data"):
        GaussianDenoiser.fit(torch.randn(1, 3))
    with pytest.raises(ValueError, match="sigma"):
        score(EmpiricalDenoiser(TRAIN), torch.randn(2, 3), 0.0)


def test_bad_data_set_arguments():
    with pytest.raises(ValueError, match="radius"):
        circle(radius=0)
    with pytest.raises(ValueError, match="n_train"):
        gaussian(n=10, n_train=11)
    with pytest.raises(ValueError, match="spectrum"):
        gaussian(spectrum=[-1.0])
    with pytest.raises(ValueError, match="variance"):
        gmm(variance=0)
    with pytest.raises(ValueError, match="unknown"):
        load("imagenet")


def test_splits_are_disjoint_deterministic_and_recorded():
    a, b = gaussian(n=100, seed=5), gaussian(n=100, seed=5)
    assert np.array_equal(a.split.train, b.split.train) and torch.equal(a.x, b.x)
    assert not np.intersect1d(a.split.train, a.split.val).size
    assert len(a.split.train) + len(a.split.val) == 100
    c = circle()
    assert c.describe()["split"]["train"] == list(range(0, 20, 2))
    torch.testing.assert_close(c.train.norm(dim=1), torch.full((10,), 10.0))


def test_model_device_follows_parameters_and_buffers():
    from memgen import model_device

    assert model_device(EmpiricalDenoiser(TRAIN)) == torch.device("cpu")           # buffers only
    assert model_device(torch.nn.Linear(2, 2).to("meta")) == torch.device("meta")  # parameters
    assert model_device(lambda x, s: x) == torch.device("cpu")                     # any callable


def test_integer_check_refuses_bools_fractions_and_strings():
    from memgen.checks import integer

    assert integer(3.0, "n") == 3 and integer(np.int64(4), "n") == 4 and integer(0, "n", minimum=0) == 0
    for bad in (True, 2.5, "3", 0, None):
        with pytest.raises(ValueError, match="n: expected an integer >= 1"):
            integer(bad, "n")
