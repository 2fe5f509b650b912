"""Claim 9's measurements (figures.claims.yoon): Mondrian-class samples of a class-conditional denoiser, and their
replicate fraction and Mondrian validity, against brute force and an exact class-conditional denoiser."""
import numpy as np
import pytest
import torch

from compare.fidelity import mondrian_valid_fraction
from figures.claims.yoon import MONDRIAN, mondrian_samples, mondrian_scores
from memgen.data import mixture, mondrian
from toymodels import EmpiricalDenoiser


class _ExactPerClass:
    """A class-conditional exact denoiser: class k denoises with the empirical denoiser of the class-k images."""

    def __init__(self, train, labels):
        self.train, self.labels = train, labels

    def with_labels(self, k):
        return EmpiricalDenoiser(self.train[self.labels == k])


def _ratio_replicates(samples, train) -> np.ndarray:
    d = torch.cdist(samples.reshape(len(samples), -1).double(), train.reshape(len(train), -1).double()).sort(1).values
    return (d[:, 0] / d[:, 1] < 1 / 3).numpy()


def test_mondrian_scores_match_brute_force():
    data = mixture({"mondrian": 12, "gm_dummies": 24}, size=8, seed=0)
    g = torch.Generator().manual_seed(1)
    near = (data.train[:6] + 0.01 * torch.randn(data.train[:6].shape, generator=g)).clamp(-1, 1)
    fresh = mondrian(10, size=8, seed=7).x                    # Mondrians never trained on
    samples = torch.cat([near, fresh, data.train[12:16]])     # + four training dummies, copied
    row = mondrian_scores(samples, data.train, data.train_labels, tol=0.2, n_boot=200, seed=0)
    brute = _ratio_replicates(samples, data.train)
    assert brute[:6].all() and brute[16:].all()               # the copies replicate
    assert row["replicate_fraction"] == pytest.approx(brute.mean(), abs=1e-12)
    assert row["validity"] == pytest.approx(mondrian_valid_fraction(samples, tol=0.2), abs=1e-12)
    assert mondrian_valid_fraction(samples[:16], tol=0.2) == 1.0    # Mondrians and their near-copies obey the rule
    for key in ("replicate_fraction", "validity"):
        assert row[f"{key}_lo"] <= row[key] <= row[f"{key}_hi"]


def test_mondrian_samples_of_an_exact_conditional_denoiser_land_on_mondrian_training_images():
    data = mixture({"mondrian": 6, "gm_dummies": 18}, size=4, seed=2)
    model = _ExactPerClass(data.train, data.train_labels)
    x = mondrian_samples(model, data.shape, n_samples=16, steps=18, seed=3)
    assert x.shape == (16, *data.shape) and x.abs().max() <= 1             # clipped to the image range
    d = torch.cdist(x.reshape(16, -1).double(), data.train.reshape(len(data.train), -1).double())
    nearest = d.argmin(1)
    assert (data.train_labels[nearest] == MONDRIAN).all()                  # the Mondrian class, never a dummy
    assert float(d.min(1).values.max()) < 0.05                             # on a training image
    assert torch.equal(x, mondrian_samples(model, data.shape, n_samples=16, steps=18, seed=3))   # seeded
    assert not torch.equal(x, mondrian_samples(model, data.shape, n_samples=16, steps=18, seed=4))
    row = mondrian_scores(x, data.train, data.train_labels, tol=0.2, n_boot=100)
    assert row["replicate_fraction"] == 1.0 and row["validity"] == 1.0
