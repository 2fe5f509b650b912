"""Where a curve over noise levels peaks, finer than its grid, with a bootstrap interval.

A peak location read off a grid moves in steps of the grid spacing, so "the peak moves to smaller
sigma" cannot be asserted from grid maxima when the shift is about one step. :func:`fitted_peak` fits a
parabola in ``u = log sigma`` through the grid maximum and its ``window`` neighbours on each side,
``v(u) ~ a u^2 + b u + c``, and returns ``sigma* = exp(-b / (2a))`` (clipped to the fitted span; the grid
maximum itself when the points are not concave, ``a >= 0``). :func:`gap_peak` applies it to the
generalization gap ``G(sigma) = (E_val - E_train) / E_train`` computed from per-point errors, and
resamples the training and validation points (percentile bootstrap, :func:`compare.bootstrap.bootstrap`)
for an interval of ``sigma*`` and of the peak height ``G(sigma*)``.
"""
from __future__ import annotations

import numpy as np

from memgen.checks import integer

from .bootstrap import bootstrap, weighted_mean


def fitted_peak(sigmas, values, *, window: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(sigma*, v*)`` of each row of ``values`` ``[..., S]`` over the increasing or decreasing grid ``sigmas`` ``[S]``.

    ``sigma*`` is the vertex of the least-squares parabola in ``log sigma`` through the row's maximum and
    up to ``window`` grid points on each side (fewer at the ends of the grid), clipped to that span;
    ``v*`` is the parabola's value there. Rows whose fitted points are not concave give the grid maximum.
    NaN entries are ignored when locating the maximum; an all-NaN row gives NaN.
    """
    window = integer(window, "window")
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    v = np.asarray(values, dtype=np.float64)
    if v.shape[-1] != s.size or s.size < 3:
        raise ValueError(f"values: expected [..., {s.size}] over at least 3 noise levels, got shape {v.shape}")
    if not (s > 0).all():
        raise ValueError("sigmas: noise levels must be > 0")
    u = np.log(s)
    flat = v.reshape(-1, s.size)
    sig_out = np.full(flat.shape[0], np.nan)
    val_out = np.full(flat.shape[0], np.nan)
    for r, row in enumerate(flat):
        if np.isnan(row).all():
            continue
        j = int(np.nanargmax(row))
        lo, hi = max(0, j - window), min(s.size, j + window + 1)
        uu, vv = u[lo:hi], row[lo:hi]
        ok = np.isfinite(vv)
        sig_out[r], val_out[r] = s[j], row[j]
        if ok.sum() < 3:
            continue
        a, b, c = np.polyfit(uu[ok], vv[ok], 2)
        if a >= 0:
            continue
        u_star = float(np.clip(-b / (2 * a), uu[ok].min(), uu[ok].max()))
        sig_out[r], val_out[r] = np.exp(u_star), a * u_star ** 2 + b * u_star + c
    shape = v.shape[:-1]
    return sig_out.reshape(shape), val_out.reshape(shape)


def gap_peak(e_train, e_val, sigmas, *, window: int = 2, n_boot: int = 1000, level: float = 0.95,
             seed: int = 0, clusters=None) -> dict:
    """The fitted peak of ``G(sigma) = (mean_i e_val[i] - mean_i e_train[i]) / mean_i e_train[i]``.

    Args:
        e_train, e_val: per-point errors ``[n_train, S]`` and ``[n_val, S]`` on the grid ``sigmas``
            (e.g. :func:`compare.gap.point_errors`, with common random numbers).
        window: grid points on each side of the maximum used by :func:`fitted_peak`.
        n_boot, level, seed: the percentile bootstrap, training and validation points resampled independently.
        clusters: optional ``(train_labels, val_labels)``, each point's experiment (seed): the two-level
            bootstrap of :mod:`compare.bootstrap` (experiments, then points within each).

    Returns ``{'sigma_peak', 'sigma_peak_lo', 'sigma_peak_hi', 'gap_peak', 'gap_peak_lo', 'gap_peak_hi',
    'grid_step'}`` (``grid_step``: the grid's median ratio of neighbouring sigmas, the resolution of a
    grid maximum).
    """
    et, ev = np.asarray(e_train, dtype=np.float64), np.asarray(e_val, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    for name, e in (("e_train", et), ("e_val", ev)):
        if e.ndim != 2 or e.shape[1] != s.size:
            raise ValueError(f"{name}: expected per-point errors [n, {s.size}], got shape {e.shape}")

    def statistic(wt, wv):
        mt, mv = weighted_mean(wt, et), weighted_mean(wv, ev)
        with np.errstate(divide="ignore", invalid="ignore"):
            where, height = fitted_peak(s, (mv - mt) / mt, window=window)
        return np.stack([np.log(where), height], -1)

    est, lo, hi = bootstrap(statistic, et.shape[0], ev.shape[0], n_boot=n_boot, level=level, seed=seed,
                            clusters=clusters)
    step = float(np.exp(np.median(np.abs(np.diff(np.log(s))))))
    return {"sigma_peak": float(np.exp(est[0])), "sigma_peak_lo": float(np.exp(lo[0])),
            "sigma_peak_hi": float(np.exp(hi[0])), "gap_peak": float(est[1]), "gap_peak_lo": float(lo[1]),
            "gap_peak_hi": float(hi[1]), "grid_step": step}
