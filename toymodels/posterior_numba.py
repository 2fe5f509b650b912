"""Fused numba kernel for the empirical posterior in low dimension (d of a few units, n up to millions).

Same quantities as :func:`toymodels.posterior_torch.streaming_posterior` (mean, entropy, log
normalizer) but without GEMMs: for d ~ 2 a matrix product is memory-bound, while a fused loop keeps
one query in registers and streams the training set once for the maximum logit and once for the
sums, computing ``||x - y_j||^2`` by exact differences (no cancellation). Queries run in parallel
(``prange``); all accumulation is in float64 whatever the input dtype.
"""
from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def _posterior_lowdim(x, y, coef, mean, entropy, log_normalizer):
    B, d = x.shape
    n = y.shape[0]
    for b in numba.prange(B):
        c = coef[b]
        m = -np.inf
        for j in range(n):
            d2 = 0.0
            for k in range(d):
                diff = x[b, k] - y[j, k]
                d2 += diff * diff
            lj = c * d2
            if lj > m:
                m = lj
        s = 0.0
        t = 0.0
        acc = np.zeros(d)
        for j in range(n):
            d2 = 0.0
            for k in range(d):
                diff = x[b, k] - y[j, k]
                d2 += diff * diff
            r = c * d2 - m
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


def numba_posterior(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> dict:
    """Mean ``[B, d]``, entropy ``[B]`` and log normalizer ``[B]`` of the posterior (float64 numpy)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    coef = -0.5 / np.ascontiguousarray(sigma, dtype=np.float64) ** 2
    B = x.shape[0]
    mean, entropy, logz = np.empty_like(x), np.empty(B), np.empty(B)
    _posterior_lowdim(x, y, coef, mean, entropy, logz)
    return {"mean": mean, "entropy": entropy, "log_normalizer": logz}
