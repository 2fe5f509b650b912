"""Replicates: samples that copy a training point, by the ratio criterion of the two nearest neighbours.

For a sample ``s`` with nearest and second-nearest training points at distances ``d1 <= d2`` (pixel
space or a given feature map; :func:`compare.neighbours.nearest_two`), ``s`` is a replicate when
``d1 / d2 < threshold`` (1/3 as in Yoon et al. and Bonnaire et al.). The two nearest are taken over
*distinct* training points: points within ``duplicate_tol`` of each other (in the space the distances
are measured in) are one point, represented by the smallest index of its group
(:func:`distinct_points`), so a sample on a training image that appears twice is a replicate (with
``d2`` the distance to the next distinct image) rather than ``0/0``. The summary reports how many
duplicates were merged (``train_duplicates``); ``n_train`` counts distinct points. ``0/0`` (only possible
when no duplicates are merged, e.g. through a feature map that collapses points) counts as ratio 1.

Reported, for all samples and per class: the fraction of samples that replicate, and the number and
fraction of training points replicated at least once (a training point ``j`` is replicated when some
replicating sample has ``j`` as its nearest point). A sample's class is its own label when
``sample_labels`` are given, else the label of its nearest training point. Intervals are percentile
bootstraps over samples (one resampling shared by every row and column); the count of distinct
replicated training points shrinks under resampling (a resample holds about 63% distinct samples), so
its interval is shifted by the bootstrap estimate of that bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memgen.checks import as_batch, as_points, in_interval, integer
from memgen.pairwise import DEFAULT_BUDGET, squared_norms, sq_distance_chunks

from .bootstrap import bootstrap, check_bootstrap
from .gap import check_tags
from .neighbours import Neighbours, features, nearest_two
from .records import Records

SUMMARY_COLUMNS = ("group", "n_samples", "replicate_fraction", "replicate_fraction_lo", "replicate_fraction_hi",
                   "n_train", "train_replicated", "train_replicated_lo", "train_replicated_hi",
                   "train_replicated_fraction", "train_replicated_fraction_lo", "train_replicated_fraction_hi",
                   "threshold", "train_duplicates")
SAMPLE_COLUMNS = ("sample", "nearest", "second", "d1", "d2", "ratio", "replicate", "label")


@dataclass
class ReplicateResult:
    """``summary`` (one row for ``group='all'`` and one per class), ``per_sample`` (one row per sample)
    and the raw :class:`~compare.neighbours.Neighbours`."""

    summary: Records
    per_sample: Records
    neighbours: Neighbours


def ratio(d1, d2) -> np.ndarray:
    """``d1 / d2`` with ``0 / 0 := 1`` (equidistant to two identical training points)."""
    d1, d2 = np.asarray(d1, dtype=np.float64), np.asarray(d2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)


def distinct_points(train, *, tol: float = 0.0, feature_map=None, budget: int = DEFAULT_BUDGET) -> np.ndarray:
    """``rep[j]``: the smallest index ``i`` with ``||phi(y_i) - phi(y_j)|| <= tol`` (``rep[j] == j`` for a
    point with no earlier duplicate). ``phi`` is ``feature_map`` (pixels when None).

    Squared distances come by float64 GEMM (:func:`memgen.pairwise.sq_distance_chunks`) on centred
    features; a pair counts as within ``tol`` when ``d2 <= tol^2 + 64 eps (||y_i||^2 + ||y_j||^2)``, the
    second term absorbing the round-off of the expansion so that exact copies are found at ``tol = 0``.
    Groups are not closed under chains (``a ~ b ~ c`` with ``a`` far from ``c`` keeps ``c`` apart from
    ``a`` unless ``c`` is within ``tol`` of it); with ``tol`` below the data's spacing there are none.
    """
    if not float(tol) >= 0:
        raise ValueError(f"duplicate_tol: expected a distance >= 0, got {tol!r}")
    y = as_points(train, "train")
    fy = features(y, feature_map, 1024, torch.float64)
    fy = fy - fy.mean(0)
    ysq = squared_norms(fy)
    eps = 64 * torch.finfo(torch.float64).eps
    rep = np.arange(len(fy))
    block = int(max(1, min(len(fy), budget // (8 * 3 * len(fy)))))
    for b0 in range(0, len(fy), block):
        xb = fy[b0:b0 + block]
        found = torch.full((len(xb),), len(fy), dtype=torch.long)
        for j0, j1, d2 in sq_distance_chunks(xb, fy, ysq, budget=budget, temporaries=3):
            close = d2 <= float(tol) ** 2 + eps * (ysq[b0:b0 + len(xb), None] + ysq[None, j0:j1])
            first = torch.where(close.any(1), close.float().argmax(1) + j0, len(fy))
            found = torch.minimum(found, first)
        rep[b0:b0 + len(xb)] = found.numpy()
    return rep


def _labels(labels, n: int, name: str) -> np.ndarray | None:
    if labels is None:
        return None
    lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if lab.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels, got {lab.shape[0]}")
    missing = np.flatnonzero(np.asarray(lab != lab))              # NaN is the one label unequal to itself
    if missing.size:
        raise ValueError(f"{name}: label {missing[0]} is NaN ({missing.size} of {n}); expected a class label "
                         "(an integer or a name) for every point")
    return lab


def _unique_counter(rep: np.ndarray, nearest: np.ndarray, member: np.ndarray):
    """Statistic: number of distinct nearest points among replicating member samples, per replicate weights."""
    sel = np.flatnonzero(rep & member)
    if sel.size == 0:
        return lambda w: np.zeros(w.shape[0])
    order = sel[np.argsort(nearest[sel], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(nearest[order]) != 0])
    return lambda w: (np.add.reduceat(w[:, order], starts, axis=1) > 0).sum(1).astype(np.float64)


def replicates(samples, train, *, threshold: float = 1 / 3, feature_map=None, train_labels=None,
               sample_labels=None, duplicate_tol: float = 0.0, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
               budget: int = DEFAULT_BUDGET, tags: dict | None = None, progress: bool = True) -> ReplicateResult:
    """Find replicates among ``samples`` of the training set ``train`` (formulas in the module doc).

    Args:
        samples: ``[m, *shape]`` generated samples.
        train: ``[n, *shape]`` training points (n >= 2).
        threshold: a sample replicates when ``d1 / d2 < threshold``.
        feature_map: optional ``phi: [b, *shape] -> [b, ...]`` (pixel space when None).
        train_labels: optional class of each training point (enables per-class rows); NaN is refused.
        sample_labels: optional class of each sample (default: the class of its nearest training point).
        duplicate_tol: training points this close (in the distance space) are one (:func:`distinct_points`).
        n_boot, level, seed: the percentile bootstrap over samples.
        tags: columns added to every row.
    """
    threshold = in_interval(threshold, "threshold", 0.0, 1.0, closed="right")
    n_boot, level, seed = check_bootstrap(n_boot, level, seed)
    budget = integer(budget, "budget")
    tags = check_tags(tags, SUMMARY_COLUMNS + SAMPLE_COLUMNS)
    s = as_batch(samples, "samples")
    y = as_points(train, "train")
    if feature_map is None and tuple(y.shape[1:]) != tuple(s.shape[1:]):
        raise ValueError(f"samples, train: shapes {tuple(s.shape[1:])} and {tuple(y.shape[1:])} differ")
    tl = _labels(train_labels, y.shape[0], "train_labels")
    sl = _labels(sample_labels, s.shape[0], "sample_labels")
    if sl is not None and tl is None:
        raise ValueError("sample_labels: need train_labels too (per-class counts of training points)")
    keep = np.flatnonzero(distinct_points(y, tol=duplicate_tol, feature_map=feature_map, budget=budget)
                          == np.arange(y.shape[0]))
    n_dup = y.shape[0] - len(keep)
    if len(keep) < 2:
        raise ValueError("train: fewer than 2 distinct training points; nothing to tell apart")
    nb = nearest_two(s, y[torch.as_tensor(keep)], feature_map=feature_map, budget=budget, progress=progress)
    d = np.asarray(nb.distances)
    nn = keep[np.asarray(nb.indices)]                       # indices into the full training set
    nb = Neighbours(d if isinstance(nb.distances, np.ndarray) else nb.distances,
                    nn if isinstance(nb.indices, np.ndarray) else torch.as_tensor(nn))
    r = ratio(d[:, 0], d[:, 1])
    rep = r < float(threshold)
    label = None if tl is None else (sl if sl is not None else tl[nn[:, 0]])
    # (name, samples of the group, samples whose nearest point is in the group, training points in the group)
    groups = [("all", np.ones(len(rep), bool), np.ones(len(rep), bool), len(keep))]
    if tl is not None:
        groups += [(c.item(), label == c, tl[nn[:, 0]] == c, int((tl[keep] == c).sum()))
                   for c in np.unique(np.concatenate([tl, label]))]
    counters = [_unique_counter(rep, nn[:, 0], near) for _, _, near, _ in groups]
    n_train = np.asarray([g[3] for g in groups], dtype=np.float64)

    def fractions(w):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([w[:, member][:, rep[member]].sum(1) / w[:, member].sum(1)
                             for _, member, _, _ in groups], 1)

    def counts(w):
        c = np.stack([count(w) for count in counters], 1)
        return np.stack([c, c / n_train], 2)

    kw = dict(n_boot=n_boot, level=level, seed=seed)
    est_f, lo_f, hi_f = bootstrap(fractions, len(rep), **kw)
    est_c, lo_c, hi_c = bootstrap(counts, len(rep), bias_corrected=True, **kw)     # same resamples (same seed)
    cap = np.stack([n_train, np.ones_like(n_train)], 1)            # shifted bounds stay within the possible range
    lo_c, hi_c = np.clip(lo_c, 0, cap), np.clip(hi_c, 0, cap)
    est = np.concatenate([est_f[:, None], est_c], 1)
    lo = np.concatenate([lo_f[:, None], lo_c], 1)
    hi = np.concatenate([hi_f[:, None], hi_c], 1)
    summary = Records()
    for k, (g, member, _, n_g) in enumerate(groups):
        summary.append({**tags, "group": g, "n_samples": int(member.sum()),
                        "replicate_fraction": float(est[k, 0]), "replicate_fraction_lo": float(lo[k, 0]),
                        "replicate_fraction_hi": float(hi[k, 0]), "n_train": n_g,
                        "train_replicated": int(round(est[k, 1])), "train_replicated_lo": float(lo[k, 1]),
                        "train_replicated_hi": float(hi[k, 1]), "train_replicated_fraction": float(est[k, 2]),
                        "train_replicated_fraction_lo": float(lo[k, 2]),
                        "train_replicated_fraction_hi": float(hi[k, 2]), "threshold": float(threshold),
                        "train_duplicates": n_dup})
    per_sample = Records({**tags, "sample": i, "nearest": int(nn[i, 0]), "second": int(nn[i, 1]),
                          "d1": float(d[i, 0]), "d2": float(d[i, 1]), "ratio": float(r[i]), "replicate": bool(rep[i]),
                          "label": None if label is None else label[i].item()} for i in range(len(rep)))
    return ReplicateResult(summary, per_sample, nb)
