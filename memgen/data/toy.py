"""Low-dimensional data sets: the circle toy, Gaussians with a given spectrum, Gaussian mixtures."""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_values, finite, flag, integer, positive

from .dataset import Dataset
from .split import alternating_split, random_split, split_counts


def circle(n: int = 20, radius: float = 10.0) -> Dataset:
    """``n`` points equally spaced on a circle of ``radius`` in 2-D; train/validation alternate.

    The default (20 points, radius 10: 10 train, 10 validation) is Kaiser & Kollmann's toy.
    """
    n = integer(n, "n", 2)
    radius = positive(radius, "radius")
    ang = torch.arange(int(n), dtype=torch.float64) * (2 * math.pi / n)
    x = radius * torch.stack([ang.cos(), ang.sin()], 1)
    return Dataset("circle", x.float(), alternating_split(int(n)), params={"n": int(n), "radius": radius})


def _check_counts(n: int, n_train: int | None, seed: int) -> int:
    """``n >= 2`` points, ``n_train`` in [1, n] (default ``n // 2``) and a seed >= 0; returns ``n_train``."""
    n = integer(n, "n", 2)
    return split_counts(n, n // 2 if n_train is None else n_train, seed)


def gaussian(n: int = 2000, spectrum=(1.0,) * 8, *, n_train: int | None = None, seed: int = 0,
             rotate: bool = False) -> Dataset:
    """``n`` samples of ``N(0, C)`` whose covariance has eigenvalues ``spectrum`` (d = len(spectrum)).

    ``rotate`` applies a seeded random orthogonal basis (else C is diagonal). ``truth`` holds mean and C.
    """
    n_train, rotate = _check_counts(n, n_train, seed), flag(rotate, "rotate")
    lam = as_values(spectrum, "spectrum", lo=0.0).numpy()
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError("spectrum: expected a non-empty 1-D list of eigenvalues >= 0")
    rng = np.random.default_rng(seed)
    d = lam.size
    q = np.linalg.qr(rng.standard_normal((d, d)))[0] if rotate else np.eye(d)
    x = (rng.standard_normal((int(n), d)) * np.sqrt(lam)) @ q.T
    cov = (q * lam) @ q.T
    return Dataset("gaussian", torch.as_tensor(x, dtype=torch.float32), random_split(int(n), n_train, seed),
                   params={"n": int(n), "spectrum": lam.tolist(), "n_train": n_train, "seed": seed, "rotate": rotate},
                   truth={"weights": [1.0], "means": np.zeros((1, d)), "covs": [cov]})


def gmm(n: int = 2000, d: int = 8, *, n_train: int | None = None, seed: int = 0, center: float = 1.0,
        variance: float = 1.0, weights=(0.5, 0.5)) -> Dataset:
    """Two Gaussians ``N(±center·1, variance·I)`` in ``d`` dimensions (Bonnaire et al.'s mixture), labelled 0/1."""
    n_train = _check_counts(n, n_train, seed)
    d = integer(d, "d")
    variance, center = positive(variance, "variance"), finite(center, "center")
    w = as_values(weights, "weights", lo=0.0).numpy()
    if w.shape != (2,) or w.sum() <= 0:
        raise ValueError("weights: expected two non-negative mixing weights")
    w = w / w.sum()
    rng = np.random.default_rng(seed)
    labels = rng.choice(2, size=int(n), p=w)
    means = np.stack([np.full(d, center), np.full(d, -center)])
    x = means[labels] + math.sqrt(variance) * rng.standard_normal((int(n), int(d)))
    return Dataset("gmm", torch.as_tensor(x, dtype=torch.float32), random_split(int(n), n_train, seed),
                   labels=torch.as_tensor(labels), classes=["+", "-"],
                   params={"n": int(n), "d": int(d), "n_train": n_train, "seed": seed, "center": center,
                           "variance": variance, "weights": w.tolist()},
                   truth={"weights": w.tolist(), "means": means, "covs": [variance, variance]})
