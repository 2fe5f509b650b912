"""Numba loops over the ``[B, n]`` float64 logit products of :mod:`toymodels.trajectory`.

Once a query's posterior has collapsed, a sampler step costs two passes over its row of ``n``
products instead of a GEMM over ``n x d``: these loops do each pass in place, one query per thread
(``prange``), allocating nothing of size ``n``.
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def kept_points(s, vsq, cut, idx, rel, top):
    """Points that carry weight, for each query (row) ``r`` of ``s``.

    ``z_j = 2 s[r, j] - vsq[j]`` (the logit times ``2 sigma^2``, up to a per-query constant); the kept
    points are those with ``z_j - max z >= cut`` (``cut = 2 sigma^2 log tol``: weight at least ``tol``
    of the largest). The first ``idx.shape[1]`` of them (in index order) go to ``idx[r]`` with
    ``rel[r] = z_j - max z``; ``top[r] = max z``. Returns the number of kept points of each query
    (possibly more than ``idx.shape[1]``, in which case the row is incomplete).
    """
    n = s.shape[1]
    cap = idx.shape[1]
    count = np.zeros(s.shape[0], np.int64)
    for r in numba.prange(s.shape[0]):
        m = -np.inf
        for j in range(n):
            m = max(m, 2.0 * s[r, j] - vsq[j])
        top[r] = m
        c = 0
        for j in range(n):
            z = 2.0 * s[r, j] - vsq[j] - m
            if z >= cut:
                if c < cap:
                    idx[r, c] = j
                    rel[r, c] = z
                c += 1
        count[r] = c
    return count


@numba.njit(parallel=True, cache=True)
def dense_weights(s, rows, vsq, top, scale, tiny, out):
    """``out[i] = softmax_j(scale (2 s[r, j] - vsq[j]))`` for ``r = rows[i]``, given ``top[r] = max_j (2 s[r, j] - vsq[j])``
    (``scale = 1 / (2 sigma^2)``); ``out`` may be float32, the sums are float64. Weights below ``tiny`` (the
    smallest normal number of ``out``'s dtype) are written as 0: subnormal inputs slow the GEMM that reads
    ``out`` up to 200 times (see :mod:`toymodels.posterior_block`), and each is below ``tiny`` of the total."""
    n = s.shape[1]
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        m = top[r]
        total = 0.0
        for j in range(n):
            e = math.exp(scale * (2.0 * s[r, j] - vsq[j] - m))
            out[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(n):
            w = out[i, j] * inv
            out[i, j] = w if w >= tiny else 0.0


@numba.njit(parallel=True, cache=True)
def combine(out, x, cx, y, cy, rows, gidx, gcoef, gram):
    """``out[r] = cx x[r] + cy y[r] - sum_k gcoef[i, k] gram[gidx[i, k]]`` for ``r = rows[i]``
    (``out`` may be ``x`` or ``y``: each element is read before it is written)."""
    n = out.shape[1]
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        for j in range(n):
            out[r, j] = cx * x[r, j] + cy * y[r, j]
        for k in range(gidx.shape[1]):
            c = gcoef[i, k]
            if c != 0.0:
                g = gidx[i, k]
                for j in range(n):
                    out[r, j] -= c * gram[g, j]
