"""Fused numba kernel for the empirical posterior in low dimension (d of a few units, n up to millions).

Same quantities as :func:`toymodels.posterior_torch.streaming_posterior` (mean, entropy, log
normalizer) but without GEMMs: for d ~ 2 a matrix product is memory-bound, while a fused loop keeps
one query in registers and streams the training set once for the maximum logit and once for the
sums, computing ``||x - y_j||^2`` by exact differences (no cancellation). Queries run in parallel
(``prange``); all arithmetic is in float64 whatever the input dtype, and the training points are read
as given (float32 or float64, memory-mapped included), never copied.

A far query (``|x - c| > 2 R``, ``c`` the training mean, ``R`` the largest ``|y_j - c|``) would lose the
differences between training points in ``x - y_j`` (at ``|x| = 1e20`` they all round to ``x``); for it
the kernel streams ``||v_j||^2 - 2 u.v_j + offset`` (``u = x - c``, ``v_j = y_j - c``; see
:func:`memgen.pairwise.far_shift`), whose rounding is relative to ``|u| R`` instead.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from memgen.pairwise import far_shift


@numba.njit(inline="always")
def _d2(x, y, center, b, j, far, offset):
    d = x.shape[1]
    acc = 0.0
    if far:
        acc = offset
        for k in range(d):
            v = np.float64(y[j, k]) - center[k]
            acc += v * (v - 2.0 * (np.float64(x[b, k]) - center[k]))
    else:
        for k in range(d):
            diff = np.float64(x[b, k]) - np.float64(y[j, k])
            acc += diff * diff
    return acc


@numba.njit(parallel=True, cache=True)
def _posterior_lowdim(x, y, center, coef, far, offset, idx, start, stop, mean, entropy, log_normalizer):
    """Query ``b`` sums over the training points ``idx[start[b]:stop[b]]`` (all of them: ``idx = arange(n)``)."""
    B, d = x.shape
    for b in numba.prange(B):
        c = coef[b]
        m = -np.inf
        for p in range(start[b], stop[b]):
            lj = c * _d2(x, y, center, b, idx[p], far[b], offset[b])
            if lj > m:
                m = lj
        s = 0.0
        t = 0.0
        acc = np.zeros(d)
        for p in range(start[b], stop[b]):
            j = idx[p]
            r = c * _d2(x, y, center, b, j, far[b], offset[b]) - m
            if r > -745.0:                      # exp underflows to exactly 0 below this
                e = math.exp(r)
                s += e
                t += e * r
                for k in range(d):
                    acc[k] += e * y[j, k]
        for k in range(d):
            mean[b, k] = acc[k] / s
        h = math.log(s) - t / s
        entropy[b] = h if h > 0.0 else 0.0
        log_normalizer[b] = m + math.log(s)


def numba_posterior(x: np.ndarray, y: np.ndarray, center: np.ndarray, radius: float, sigma: np.ndarray,
                    subsets: tuple | None = None) -> dict:
    """Mean ``[B, d]``, entropy ``[B]`` and log normalizer ``[B]`` of the posterior (float64 numpy).

    ``y`` (``[n, d]``, float32 or float64) is used in place; ``center``/``radius`` as in the module doc.
    ``subsets = (idx, start, stop)`` restricts query ``b`` to the points ``idx[start[b]:stop[b]]``
    (default: all n points for every query).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if y.dtype not in (np.float32, np.float64) or not y.flags.c_contiguous:
        y = np.ascontiguousarray(y, dtype=np.float64)
    center = np.ascontiguousarray(center, dtype=np.float64)
    sigma = np.ascontiguousarray(sigma, dtype=np.float64)
    coef = -0.5 / sigma ** 2
    with np.errstate(over="ignore"):
        u_sq = ((x - center) ** 2).sum(1)
    if not np.isfinite(u_sq).all():
        raise ValueError("x: squared distances to the training points overflow float64; pass smaller inputs")
    lower, offset = (a.numpy() for a in far_shift(torch.from_numpy(u_sq), 2 * radius))    # any R' >= R bounds
    far = lower > 0
    B = x.shape[0]
    mean, entropy, logz = np.empty_like(x), np.empty(B), np.empty(B)
    if subsets is None:
        subsets = (np.arange(y.shape[0]), np.zeros(B, np.int64), np.full(B, y.shape[0], np.int64))
    _posterior_lowdim(x, y, center, coef, far, offset, *subsets, mean, entropy, logz)
    if not np.isfinite(logz).all():
        raise ValueError("x, sigma: the logits -||x - y||^2 / (2 sigma^2) overflow float64; pass smaller inputs")
    return {"mean": mean, "entropy": entropy, "log_normalizer": logz + coef * lower}
