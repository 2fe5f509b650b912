"""Memorization score by cosine similarity (Marion & Wu's criterion), beside the ratio criterion of replicates.

For samples ``s_b`` and training points ``y_j`` in a feature space ``phi`` (pixels by default; any map of
:mod:`compare.features`), the best cosine similarity of a sample is
``c_b = max_j <phi(s_b), phi(y_j)> / (||phi(s_b)|| ||phi(y_j)||)``, and the memorization score is the
fraction of samples with ``c_b > threshold`` (0.6 by default).

The search is the exact streamed nearest search of :func:`compare.neighbours.nearest_two` on the unit
vectors ``u = phi / ||phi||``: for unit vectors ``||u - v||^2 = 2 - 2 cos(u, v)``, so the nearest
point is the most similar one and ``c_b = 1 - d1^2 / 2`` (``d1`` recomputed in float64). Memory is that
of the nearest search (the training features plus a byte budget). The interval is a percentile bootstrap
over samples. Pitfalls (docs/metrics.md): the threshold is tied to the feature space it was set in
(raw pixels of natural images are all fairly similar: cosine is not shift invariant); a training set
with duplicates gives a high similarity for every copy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memgen.checks import as_batch, as_points
from memgen.pairwise import DEFAULT_BUDGET

from .bootstrap import bootstrap, weighted_mean
from .features import feature_map as make_feature_map
from .neighbours import nearest_two
from .records import Records


@dataclass
class CosineResult:
    """``score`` (fraction of samples over the threshold) with its interval ``lo, hi``; per-sample
    ``best`` cosine ``[m]`` and ``nearest`` training index ``[m]`` (numpy)."""

    score: float
    lo: float
    hi: float
    threshold: float
    best: np.ndarray
    nearest: np.ndarray

    def summary(self, **tags) -> Records:
        """One row: ``memorization_score`` with ``_lo``/``_hi``, ``threshold``, ``n_samples`` (+ tags)."""
        return Records([{**tags, "memorization_score": self.score, "memorization_score_lo": self.lo,
                         "memorization_score_hi": self.hi, "threshold": self.threshold,
                         "n_samples": len(self.best)}])


def unit_features(phi):
    """``x -> phi(x) / ||phi(x)||`` (rows of the flattened features; a zero feature vector is refused)."""
    def unit(x):
        f = torch.as_tensor(phi(x)).reshape(len(x), -1).double()
        norm = f.norm(dim=1, keepdim=True)
        if bool((norm == 0).any()):
            raise ValueError("feature_map: a sample or training point has an all-zero feature vector "
                             "(its cosine similarity is undefined)")
        return f / norm
    return unit


def cosine_memorization(samples, train, *, feature_map=None, threshold: float = 0.6, n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0, budget: int = DEFAULT_BUDGET,
                        progress: bool = True) -> CosineResult:
    """Marion & Wu's memorization score of ``samples`` ``[m, *shape]`` against ``train`` ``[n, *shape]`` (n >= 2).

    ``feature_map``: None (pixels), a module or callable, or a spec of :func:`compare.features.feature_map`;
    ``threshold`` in (-1, 1). Returns a :class:`CosineResult` (formulas in the module docstring).
    """
    if not -1 < float(threshold) < 1:
        raise ValueError(f"threshold: expected a cosine similarity in (-1, 1), got {threshold!r}")
    s = as_batch(samples, "samples")
    y = as_points(train, "train")
    unit = unit_features(make_feature_map(feature_map))
    nb = nearest_two(s, y, feature_map=unit, budget=budget, progress=progress)
    d1 = np.asarray(nb.distances)[:, 0]
    best = np.clip(1 - d1 ** 2 / 2, -1, 1)
    hit = (best > float(threshold)).astype(np.float64)
    est, lo, hi = bootstrap(lambda w: weighted_mean(w, hit), len(hit), n_boot=n_boot, level=level, seed=seed)
    return CosineResult(float(est), float(lo), float(hi), float(threshold), best, np.asarray(nb.indices)[:, 0])
