"""Percentile bootstrap over points, written with resampling multiplicities so it vectorizes.

A bootstrap replicate of a sample of ``n`` points is a draw of ``n`` indices with replacement; it is
fully described by the multiplicities ``w_i`` (how often point i was drawn, ``sum_i w_i = n``). Every
statistic here is a function of these weights, e.g. the resampled mean of per-point values ``v_i``:
``mean* = sum_i w_i v_i / sum_i w_i`` (one matrix product for all replicates at once). Several
samples (training and validation points) are resampled independently.

The interval is the percentile interval: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the
statistic over the replicates (optionally shifted by the bootstrap bias ``mean* - estimate``). The
point estimate is the statistic at unit weights.

Points from several independent experiments (seeds: each a training run with its own samples and noise)
are not independent of each other within an experiment. ``clusters`` gives each point the experiment
it belongs to, and a replicate then resamples at two levels: it draws ``S`` of the ``S`` experiments with
replacement (multiplicities ``M_c``, shared by all samples, since a seed's training and validation points
belong together), then, within each drawn copy of experiment ``c``, its ``k_c`` points with replacement.
The ``M_c`` copies together give the points of ``c`` the multiplicities of ``Multinomial(M_c k_c, 1/k_c)``.
With one experiment this is the ordinary bootstrap; with one point per experiment, the bootstrap over
experiments.
"""
from __future__ import annotations

import warnings

import numpy as np

from memgen.checks import as_values, function, in_interval, integer

BLOCK_ELEMENTS = 2 ** 22
"""At most this many weights (replicates x points) are held per block of replicates."""


def check_bootstrap(n_boot: int, level: float, seed: int, seed_name: str = "seed") -> tuple[int, float, int]:
    """``(n_boot, level, seed)`` checked: a count >= 1, a confidence level in (0, 1), a seed >= 0."""
    return (integer(n_boot, "n_boot"), in_interval(level, "level", 0.0, 1.0, closed="neither"),
            integer(seed, seed_name, 0))


def resample_weights(n: int, n_rep: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities ``[n_rep, n]`` (float64) of ``n_rep`` resamples with replacement of ``n`` points."""
    idx = rng.integers(0, n, size=(n_rep, n)) + n * np.arange(n_rep)[:, None]
    return np.bincount(idx.ravel(), minlength=n_rep * n).reshape(n_rep, n).astype(np.float64)


def cluster_weights(labels: list, n_rep: int, rng: np.random.Generator) -> list:
    """Two-level multiplicities (module doc): for each sample ``s``, ``[n_rep, len(labels[s])]`` (float64) where
    ``labels[s][i]`` is the experiment (an integer in ``0..S-1``, each present) of point ``i``; the experiments
    are drawn once per replicate for all samples."""
    n_clusters = 1 + max(int(np.max(lab)) for lab in labels)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_rep)      # [r, S]
    out = []
    for lab in labels:
        w = np.zeros((n_rep, lab.size))
        for c in np.unique(lab):
            where = np.flatnonzero(lab == c)
            w[:, where] = rng.multinomial(draws[:, c] * where.size, np.full(where.size, 1.0 / where.size))
        out.append(w)
    return out


def _cluster_labels(clusters, sizes) -> list:
    labels = [np.asarray(c).reshape(-1) for c in clusters]
    if len(labels) != len(sizes) or any(lab.size != int(n) for lab, n in zip(labels, sizes)):
        raise ValueError(f"clusters: expected one label per point of each sample (sizes {list(sizes)}), got "
                         f"{[lab.size for lab in labels]}")
    if any(lab.dtype.kind not in "iu" for lab in labels):
        raise ValueError("clusters: expected integer experiment labels")
    names = np.unique(np.concatenate(labels))           # the experiments present, numbered 0..S-1
    return [np.searchsorted(names, lab) for lab in labels]


def bootstrap(statistic, *sizes: int, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
              bias_corrected: bool = False, clusters=None):
    """Point estimate and percentile interval of ``statistic`` under resampling of each sample.

    Args:
        statistic: ``statistic(*weights) -> array [r, *k]`` where ``weights[s]`` is ``[r, sizes[s]]``
            (multiplicities of sample s in each of r replicates).
        sizes: the number of points of each sample (resampled independently).
        n_boot: number of bootstrap replicates.
        level: confidence level of the interval.
        seed: seed of the resampling (same seed, same interval).
        bias_corrected: shift the interval by the bootstrap estimate of the bias,
            ``mean(replicates) - estimate`` (for statistics that resampling itself biases, such as a
            count of distinct values: a resample holds only about 63% distinct points).
        clusters: optional, one array per sample of each point's experiment (seed) label: the two-level
            bootstrap of the module doc, experiments first, then points within each drawn experiment.

    Returns ``(estimate, lo, hi)``, each of shape ``[*k]`` (NaN replicates are ignored in the quantiles).
    """
    n_boot, level, seed = check_bootstrap(n_boot, level, seed)
    function(statistic, "statistic", "a function of the resampling weights")
    if not sizes or any(int(n) != n or n < 1 for n in sizes):
        raise ValueError(f"sizes: expected one positive point count per sample, got {sizes!r}")
    labels = None if clusters is None else _cluster_labels(clusters, sizes)
    estimate = np.asarray(statistic(*[np.ones((1, int(n))) for n in sizes]), dtype=np.float64)[0]
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_ELEMENTS // max(sizes))
    reps = []
    for r0 in range(0, int(n_boot), block):
        r = min(block, int(n_boot) - r0)
        weights = (cluster_weights(labels, r, rng) if labels is not None
                   else [resample_weights(int(n), r, rng) for n in sizes])
        reps.append(np.asarray(statistic(*weights), dtype=np.float64))
    reps = np.concatenate(reps, 0)
    reps[~np.isfinite(reps)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)             # all-NaN columns give NaN bounds
        lo, hi = np.nanquantile(reps, [(1 - level) / 2, (1 + level) / 2], axis=0)
        if bias_corrected:
            bias = np.nanmean(reps, axis=0) - estimate
            lo, hi = lo - bias, hi - bias
    return estimate, lo, hi


def weighted_mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``sum_i w_i v_i / sum_i w_i`` for weights ``[r, n]`` and values ``[n, *k]``: returns ``[r, *k]``."""
    v = np.asarray(values, dtype=np.float64)
    flat = v.reshape(v.shape[0], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (weights @ flat) / weights.sum(1, keepdims=True)
    return out.reshape(weights.shape[0], *v.shape[1:])


def mean_interval(values, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0, clusters=None):
    """Mean over the first axis of ``values`` ``[n, *k]`` with its bootstrap interval: ``(mean, lo, hi)``
    (``clusters``: each point's experiment label, for the two-level bootstrap of the module doc)."""
    v = as_values(values, "values").numpy()
    if v.ndim == 0 or v.shape[0] == 0:
        raise ValueError("values: expected a non-empty array of per-point values [n, ...]")
    return bootstrap(lambda w: weighted_mean(w, v), v.shape[0], n_boot=n_boot, level=level, seed=seed,
                     clusters=None if clusters is None else [clusters])
