"""Fused numba kernel for the empirical posterior in low dimension (d of a few units, n up to millions).

Same quantities as :func:`toymodels.empirical._torch.streaming_posterior` (mean, entropy, log
normalizer) but without GEMMs: for d ~ 2 a matrix product is memory-bound, while a fused loop streams
the training set in blocks of ``BLOCK`` points per query, computing ``||x - y_j||^2`` by exact
differences (no cancellation). Queries run in parallel (``prange``); all arithmetic is in float64
whatever the input dtype, and the training points are read as given (float32 or float64,
memory-mapped included), never copied.

Per query, with logits ``l_j = -||x - y_j||^2 / (2 sigma^2)``, one pass sums ``w_j = exp(l_j - m)``
relative to the running maximum ``m`` (the sums are moved exactly when a block raises it), so that
each distance is computed once; at the end ``m = max_j l_j`` and
    ``mean = sum_j w_j y_j / s``,  ``entropy = log s - sum_j w_j (l_j - m) / s``,  ``log Z = m + log s``,
``s = sum_j w_j >= 1``. The exponentials are :func:`toymodels.empirical._vector_exp.exp` (within ``4 eps``
relative, 0 for ``l_j - m <= -708``, where each weight is below ``3.4e-308`` of ``s``), so every loop
over the training points vectorizes; sums are reassociated into SIMD lanes. Each weight thus carries a
relative error of a few ``eps`` beyond the rounding of its logit, as with libm's ``exp``: the outputs
equal the float64 brute force to float64 rounding (tests/test_empirical.py).

A far query (``|x - c| > 2 R``, ``c`` the training mean, ``R`` the largest ``|y_j - c|``) would lose the
differences between training points in ``x - y_j`` (at ``|x| = 1e20`` they all round to ``x``); for it
the kernel streams ``||v_j||^2 - 2 u.v_j + offset`` (``u = x - c``, ``v_j = y_j - c``; see
:func:`memgen.pairwise.far_shift`), whose rounding is relative to ``|u| R`` instead. Both forms are
``offset + sum_k (a_k - y_jk)(b_k - y_jk)``: ``a = b = x`` and ``offset = 0`` for a near query,
``a = c`` and ``b = 2 x - c`` for a far one.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from memgen.pairwise import far_shift

from ._vector_exp import exp, fmin

BLOCK = 512
"""Training points per block: a block's coordinates, distances and weights stay in the L1 cache."""

TILE = 16
"""Queries per parallel task that share each block of training points read from memory."""


@numba.njit(cache=True)
def _gather(y, idx, p0, yb):
    """``yb[k, q] = y[j, k]`` for the block's points ``j = idx[p0 + q]`` (``p0 + q`` if idx is None), in float64."""
    for q in range(yb.shape[1]):
        j = p0 + q if idx is None else idx[p0 + q]
        for k in range(yb.shape[0]):
            yb[k, q] = y[j, k]


@numba.njit(fastmath={"contract"}, cache=True)
def _distances(a, b, offset, yb, out):
    """``out[q] = offset + sum_k (a_k - yb[k, q]) (b_k - yb[k, q])``."""
    for q in range(out.shape[0]):
        out[q] = offset
    for k in range(yb.shape[0]):
        ak, bk, row = a[k], b[k], yb[k]
        for q in range(out.shape[0]):
            out[q] += (ak - row[q]) * (bk - row[q])


@numba.njit(cache=True)
def _block_min(d2):
    mn = np.inf
    for q in range(d2.shape[0]):
        mn = fmin(mn, d2[q])
    return mn


@numba.njit(fastmath={"reassoc"}, cache=True)
def _block_weights(d2, coef, m):
    """Overwrite ``d2`` with ``w = exp(coef d2 - m)``; return ``(sum w, sum w (coef d2 - m))``.

    No ``contract``: a fused ``coef d2 - m`` would keep the product's rounding error, which is huge for
    huge logits, where the largest weight must come out as ``exp(0) = 1``."""
    s = 0.0
    t = 0.0
    for q in range(d2.shape[0]):
        r = coef * d2[q] - m
        e = exp(r)
        d2[q] = e
        s += e
        t += e * r
    return s, t


@numba.njit(fastmath={"reassoc", "contract"}, cache=True)
def _dot(u, v):
    acc = 0.0
    for q in range(u.shape[0]):
        acc += u[q] * v[q]
    return acc


@numba.njit(cache=True)
def _sweep(a, b, offset, coef, y, idx, lo, hi, i0, i1, yb, d2, m, s, t, acc):
    """One pass of queries ``i0:i1`` over the points ``lo:hi`` (through ``idx``), one block read at a time.

    ``m[i]`` is the smallest ``||x_i - y_j||^2`` seen so far (start: inf); ``s``, ``t``, ``acc`` accumulate
    the weights ``exp(l_j - coef m_i)``, ``sum w (l - coef m_i)`` and ``sum w y_j`` relative to it, and are
    moved to a new maximum when a block holds a nearer point: ``alpha = exp(coef m_new - coef m_old)``,
    ``s' = alpha s``, ``t' = alpha (t + (coef m_old - coef m_new) s)``, ``acc' = alpha acc``."""
    d = y.shape[1]
    for p0 in range(lo, hi, BLOCK):
        size = min(BLOCK, hi - p0)
        block, dist = yb[:d * size].reshape((d, size)), d2[:size]     # C-contiguous views
        _gather(y, idx, p0, block)
        for i in range(i0, i1):
            _distances(a[i], b[i], offset[i], block, dist)
            near = _block_min(dist)
            if near < m[i]:
                if s[i] > 0.0:
                    shift = coef[i] * m[i] - coef[i] * near         # <= 0: old maximum less the new one
                    alpha = math.exp(shift)
                    t[i] = alpha * (t[i] + shift * s[i])
                    s[i] *= alpha
                    for k in range(d):
                        acc[i, k] *= alpha
                m[i] = near
            bs, bt = _block_weights(dist, coef[i], coef[i] * m[i])
            s[i] += bs
            t[i] += bt
            for k in range(d):
                acc[i, k] += _dot(dist, block[k])


@numba.njit(parallel=True, cache=True)
def _posterior_lowdim(a, b, offset, y, coef, idx, start, stop, tile, mean, entropy, log_normalizer):
    """Query ``i`` sums over the training points ``idx[start[i]:stop[i]]``; with idx None, over all of them
    (then ``tile`` queries share each block read)."""
    B, d = mean.shape
    m, s, t = log_normalizer, np.zeros(B), np.zeros(B)
    for c in numba.prange((B + tile - 1) // tile):
        i0, i1 = c * tile, min(B, c * tile + tile)
        yb, d2 = np.empty(d * BLOCK), np.empty(BLOCK)
        for i in range(i0, i1):
            m[i] = np.inf
            mean[i] = 0.0
        if idx is None:
            _sweep(a, b, offset, coef, y, idx, 0, y.shape[0], i0, i1, yb, d2, m, s, t, mean)
        else:
            for i in range(i0, i1):
                _sweep(a, b, offset, coef, y, idx, start[i], stop[i], i, i + 1, yb, d2, m, s, t, mean)
        for i in range(i0, i1):
            for k in range(d):
                mean[i, k] /= s[i]
            h = math.log(s[i]) - t[i] / s[i]
            entropy[i] = h if h > 0.0 else 0.0
            log_normalizer[i] = coef[i] * m[i] + math.log(s[i])     # max_j coef d2_j: rounding is monotone


def readable(y: np.ndarray) -> np.ndarray:
    """``y`` itself when the kernels can read it in place (C-contiguous float32 or float64, memory-mapped
    included), else a C-contiguous float64 copy."""
    if y.dtype not in (np.float32, np.float64) or not y.flags.c_contiguous:
        return np.ascontiguousarray(y, dtype=np.float64)
    return y


def numba_posterior(x: np.ndarray, y: np.ndarray, center: np.ndarray, radius: float, sigma: np.ndarray,
                    subsets: tuple | None = None) -> dict:
    """Mean ``[B, d]``, entropy ``[B]`` and log normalizer ``[B]`` of the posterior (float64 numpy).

    ``y`` (``[n, d]``, float32 or float64) is used in place; ``center``/``radius`` as in the module doc.
    ``subsets = (idx, start, stop)`` restricts query ``b`` to the points ``idx[start[b]:stop[b]]``
    (default: all n points for every query).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = readable(y)
    center = np.ascontiguousarray(center, dtype=np.float64)
    sigma = np.ascontiguousarray(sigma, dtype=np.float64)
    coef = -0.5 / sigma ** 2
    with np.errstate(over="ignore"):
        u_sq = ((x - center) ** 2).sum(1)
    if not np.isfinite(u_sq).all():
        raise ValueError("x: squared distances to the training points overflow float64; pass smaller inputs")
    lower, offset = (v.numpy() for v in far_shift(torch.from_numpy(u_sq), 2 * radius))    # any R' >= R bounds
    far = (lower > 0)[:, None]
    a = np.where(far, center, x)
    b = np.where(far, 2 * x - center, x)
    offset = np.where(far[:, 0], offset, 0.0)
    B = x.shape[0]
    mean, entropy, logz = np.empty_like(x), np.empty(B), np.empty(B)
    idx, start, stop = subsets if subsets is not None else (None, None, None)
    tile = 1 if subsets is not None else max(1, min(TILE, B // (8 * numba.get_num_threads())))
    _posterior_lowdim(a, b, offset, y, coef, idx, start, stop, tile, mean, entropy, logz)
    if not np.isfinite(logz).all():
        raise ValueError("x, sigma: the logits -||x - y||^2 / (2 sigma^2) overflow float64; pass smaller inputs")
    return {"mean": mean, "entropy": entropy, "log_normalizer": logz + coef * lower}
