"""Numba loops over the ``[B, n]`` float64 logit products of :mod:`toymodels.empirical._reusing_sampler`.

Once a query's posterior has collapsed, a sampler step costs two passes over its row of ``n``
products instead of a GEMM over ``n x d``, and its output a weighted sum of the few rows that carry
weight: these loops do each pass in place, one query per thread
(``prange``, on as many threads as torch's GEMMs use: :func:`memgen.threads.numba_like_torch`),
allocating nothing of size ``n``.
"""
from __future__ import annotations

import numba
import numpy as np

from memgen.threads import numba_like_torch


@numba.njit(parallel=True, cache=True)
def _kept_points(s, rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead):
    cap = idx.shape[1]
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        row = s[r]
        m = -np.inf
        for j in range(row.shape[0]):
            m = max(m, 2.0 * row[j] - vsq[j])
        top[r] = m
        c = 0
        a = 0
        for j in range(row.shape[0]):
            z = 2.0 * row[j] - vsq[j] - m
            if z >= cut:
                if c < cap:
                    idx[r, c] = j
                    rel[r, c] = z
                c += 1
            if z >= ahead_cut:
                a += 1
        count[r] = c
        ahead[r] = a


def kept_points(s, rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead):
    """Points that carry weight, for each query (row) ``r`` of ``s`` in ``rows``.

    ``z_j = 2 s[r, j] - vsq[j]`` (the logit times ``2 sigma^2``, up to a per-query constant); the kept
    points are those with ``z_j - max z >= cut`` (``cut = 2 sigma^2 log tol``: weight at least ``tol``
    of the largest). The first ``idx.shape[1]`` of them (in index order) go to ``idx[r]`` with
    ``rel[r] = z_j - max z``; ``top[r] = max z``; ``count[r]`` is the number of kept points (possibly
    more than ``idx.shape[1]``, in which case the row is incomplete); ``ahead[r]`` the number with
    ``z_j - max z >= ahead_cut`` (the kept points at another sigma, were the products unchanged).
    """
    with numba_like_torch(chunk=1):
        _kept_points(s, rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead)


@numba.njit(parallel=True, cache=True)
def _combine(out, x, cx, y, cy, rows, gidx, gcoef, gram):
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


def combine(out, x, cx, y, cy, rows, gidx, gcoef, gram):
    """``out[r] = cx x[r] + cy y[r] - sum_k gcoef[i, k] gram[gidx[i, k]]`` for ``r = rows[i]``
    (``out`` may be ``x`` or ``y``: each element is read before it is written)."""
    with numba_like_torch(chunk=1):
        _combine(out, x, cx, y, cy, rows, gidx, gcoef, gram)


@numba.njit(parallel=True, cache=True)
def _gather_mean(y, rows, idx, w, count, out):
    d = y.shape[1]
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        acc = np.zeros(d)
        for k in range(count[r]):
            row = y[idx[r, k]]
            wk = w[r, k]
            for t in range(d):
                acc[t] += wk * row[t]
        out[i] = acc


def gather_mean(y, rows, idx, w, count, out):
    """``out[i] = sum_{k < count[r]} w[r, k] y[idx[r, k]]`` for ``r = rows[i]``, accumulated in float64
    from the rows of ``y`` (``[n, d]``, any float dtype) read in place."""
    with numba_like_torch(chunk=1):
        _gather_mean(y, rows, idx, w, count, out)
