"""Exact posterior in low dimension with certified pruning: skip the pairs whose weight cannot matter.

For a query ``x`` at noise ``sigma`` with nearest training point at distance ``r0``, every training
point at distance ``r`` has weight relative to the largest
    ``w_j / w_max = exp(-(r^2 - r0^2) / (2 sigma^2))``.
Points outside the ball of radius ``r_cut = sqrt(r0^2 + 2 sigma^2 T)`` therefore each carry less than
``e^-T`` of the largest weight, and all of them together less than ``n e^-T`` of the total. With
``T = log n + 37`` the dropped mass is below ``e^-37 = 8.5e-17`` (under float64's half-ulp, 1.1e-16)
of the total weight: the mean moves by less than that times the diameter of the data, the log
normalizer by less than that, and the entropy by less than ``(T + H) e^-37`` -- all below float64
rounding. That is what is certified; it holds for any data.

A KD-tree (scipy's ``cKDTree``) gives ``r0`` exactly and the points in the ball. Queries whose ball
would hold a large part of the training set (large sigma, or ``x`` far away) gain nothing from the
tree and go to the dense fused kernel (:mod:`toymodels.empirical._numba`), as does everything when
few queries would be pruned. The cut-off between the two is a cost estimate only: it decides speed,
never the result. Pruned queries are handled ``chunk`` at a time, so that the ball indices held at
once stay near ``CHUNK_POINTS`` when the data are spread evenly.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from ._numba import numba_posterior
from ._far_series import series_posterior

TAIL_MARGIN = 37.0
"""``T = log n + TAIL_MARGIN``: the dropped weight is below ``e^-TAIL_MARGIN`` (8.5e-17) of the total."""

PRUNE_FRACTION = 0.04
"""A query is pruned when its ball is estimated to hold less than this fraction of the training set.

Measured at d = 2 (benchmarks/RESULTS.md, "Low dimension"): a point returned by the ball query costs
about 30 times a pair of the dense vectorized kernel, and the box estimate overstates the ball's share
by ``4 / pi``, so pruning pays below about 0.04."""

CHUNK_POINTS = 2 ** 20
"""Pruned queries go through the tree in chunks whose balls are estimated to hold this many points."""


def build_tree(y: np.ndarray) -> cKDTree:
    """KD-tree of the training points (a float64 copy of ``[n, d]``, small for d <= 8)."""
    return cKDTree(np.asarray(y, dtype=np.float64))


CUT_SLACK = 1e-12
"""Relative widening of the cut ball, far above the rounding of the tree's distances (d <= 8 terms, a few
1e-16): at tiny sigma the cut radius rounds to ``r0`` itself, and the ball must still hold the nearest point."""


def cut_radius(r0: np.ndarray, sigma: np.ndarray, n: int) -> np.ndarray:
    """``sqrt(r0^2 + 2 sigma^2 (log n + TAIL_MARGIN))``, widened by :data:`CUT_SLACK`: outside it every weight
    is below ``e^-T`` of the largest (a wider ball only keeps more points, so the bound still holds)."""
    return np.sqrt(r0 ** 2 + 2 * sigma ** 2 * (math.log(n) + TAIL_MARGIN)) * (1 + CUT_SLACK)


def estimated_fraction(x: np.ndarray, r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fraction of the data's bounding box ``[lo, hi]`` covered by the box of half-side ``r`` around ``x``
    (a cost estimate: the share of the training set in reach if it were spread uniformly)."""
    span = np.maximum(hi - lo, 1e-300)
    cover = np.clip(np.minimum(x + r[:, None], hi) - np.maximum(x - r[:, None], lo), 0, None) / span
    return cover.prod(1)


def pruned_posterior(x: np.ndarray, y: np.ndarray, tree: cKDTree, center: np.ndarray, radius: float,
                     sigma: np.ndarray) -> dict:
    """Mean, entropy and log normalizer (float64 numpy) of queries ``x`` [B, d] over ``y`` [n, d].

    Equal to the dense kernel up to the certified tail (module doc); ``tree`` is :func:`build_tree` of ``y``.
    Queries whose far-field series is certified (:mod:`toymodels.empirical._far_series`) take it first.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    sigma = np.ascontiguousarray(sigma, dtype=np.float64)
    series, out = series_posterior(x, y, center, radius, sigma)
    if series.all():
        return out
    rest = _pruned_or_dense(x[~series], y, tree, center, radius, sigma[~series])
    return merge(series, out, rest) if series.any() else rest


def merge(mask: np.ndarray, a: dict, b: dict) -> dict:
    """Outputs of all queries from those of the queries in ``mask`` (``a``) and of the others (``b``)."""
    merged = {k: np.empty((mask.shape[0], *v.shape[1:])) for k, v in a.items()}
    for k in merged:
        merged[k][mask], merged[k][~mask] = a[k], b[k]
    return merged


def _pruned_or_dense(x, y, tree, center, radius, sigma) -> dict:
    """The queries whose cut ball is small through the tree, the others through the dense kernel."""
    n = y.shape[0]
    r0 = tree.query(x, k=1)[0]
    r = cut_radius(r0, sigma, n)
    small = estimated_fraction(x, r, tree.mins, tree.maxes) < PRUNE_FRACTION
    small &= np.isfinite(r) & (np.linalg.norm(x - center, axis=1) <= 2 * radius)    # far queries: dense
    if not small.any():
        return numba_posterior(x, y, center, radius, sigma)
    out = _pruned_chunks(x[small], y, tree, center, radius, sigma[small], r[small])
    if small.all():
        return out
    return merge(small, out, numba_posterior(x[~small], y, center, radius, sigma[~small]))


def _pruned_chunks(x, y, tree, center, radius, sigma, r) -> dict:
    """The posterior of queries ``x`` over the points within ``r`` of each, ``chunk`` queries at a time."""
    n, B = y.shape[0], x.shape[0]
    chunk = max(1, CHUNK_POINTS // math.ceil(PRUNE_FRACTION * n))
    out = {"mean": np.empty_like(x), "entropy": np.empty(B), "log_normalizer": np.empty(B)}
    for i0 in range(0, B, chunk):
        i1 = min(B, i0 + chunk)
        balls = tree.query_ball_point(x[i0:i1], r[i0:i1], return_sorted=False, workers=-1)
        counts = np.fromiter((len(b) for b in balls), np.int64, count=len(balls))
        stop = np.cumsum(counts)
        idx = np.concatenate([np.asarray(b, np.int64) for b in balls])
        part = numba_posterior(x[i0:i1], y, center, radius, sigma[i0:i1], subsets=(idx, stop - counts, stop))
        for k, v in part.items():
            out[k][i0:i1] = v
    return out
