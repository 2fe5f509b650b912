"""Exact nearest and second-nearest training points, by GEMM, streamed over training chunks.

For queries ``q_b`` and training points ``y_j`` (after an optional feature map ``phi``), the squared
distances ``||phi(q_b) - phi(y_j)||^2 = ||q||^2 - 2 q.y + ||y||^2`` come chunk by chunk from
:func:`memgen.pairwise.shifted_distance_chunks` (one matrix product per chunk, memory bounded by a
byte budget, never ``[m, n, d]``); a running top-2 per query is merged with each chunk's top-2. Each
chunk is centred as it is read (on the mean of up to 1,024 evenly spaced training points) (distances are translation invariant; centring
keeps the expansion accurate in float32), and the two distances returned are recomputed directly,
``||phi(q) - phi(y_j)||`` accumulated in float64, from the feature vectors of the two selected points.
Memory: the byte budget (the training set is never copied; with a ``feature_map``, its features are).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from memgen.checks import as_batch, integer
from memgen.pairwise import DEFAULT_BUDGET, centred_summary, sample_center, shifted_distance_chunks, training_points, uses_raw_rows
from memgen.progress import progress_bar
from memgen.sharding import gathered, world


class Neighbours(NamedTuple):
    """``distances`` ``[m, 2]`` (L2, float64, nearest first) and ``indices`` ``[m, 2]`` of the training points."""

    distances: torch.Tensor | np.ndarray
    indices: torch.Tensor | np.ndarray


def features(x: torch.Tensor, feature_map, batch_size: int, dtype: torch.dtype) -> torch.Tensor:
    """``phi(x)`` flattened to ``[N, f]`` (identity when ``feature_map`` is None), computed in batches."""
    if feature_map is None:
        return x.reshape(x.shape[0], -1).to(dtype)
    if not callable(feature_map):
        raise TypeError(f"feature_map: expected a callable [b, *shape] -> [b, f], got {type(feature_map).__name__}")
    outs = []
    with torch.no_grad():
        for b0 in range(0, x.shape[0], batch_size):
            f = torch.as_tensor(feature_map(x[b0:b0 + batch_size]))
            rows = min(batch_size, x.shape[0] - b0)
            if f.dim() < 1 or f.shape[0] != rows:
                raise ValueError(f"feature_map: returned shape {tuple(f.shape)} for a batch of {rows}")
            outs.append(f.reshape(f.shape[0], -1).to(dtype))
    out = torch.cat(outs)
    if not bool(torch.isfinite(out).all()):
        raise ValueError("feature_map: returned NaN or inf")
    return out


def top2_chunks(u: torch.Tensor, y, center: torch.Tensor, v_sqnorm: torch.Tensor | None, *, budget: int,
                start: int = 0, raw: bool = False):
    """Indices ``[B, 2]`` (into ``y``, plus ``start``) of the two smallest ``||v_j||^2 - 2 u.v_j`` over the
    centred points ``v_j = y_j - center``: the two nearest points of the centred queries ``u``
    (the missing ``||u||^2`` is the same for every point of a query), nearest first up to rounding."""
    best_d = best_i = None
    zero = torch.zeros(u.shape[0], dtype=torch.float64, device=u.device)
    for j0, j1, _, d2 in shifted_distance_chunks(u, y, center, v_sqnorm, zero, budget=budget, temporaries=2, raw=raw):
        v, i = d2.topk(min(2, j1 - j0), dim=1, largest=False)
        i = i + (j0 + start)
        if best_d is not None:
            v, i = torch.cat([best_d, v], 1), torch.cat([best_i, i], 1)
        best_d, pos = v.topk(min(2, v.shape[1]), dim=1, largest=False)
        best_i = i.gather(1, pos)
    return best_i


def exact_distances(q: torch.Tensor, y, idx: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """``||q_b - y_{idx[b, k]}||`` ``[B, K]`` accumulated in float64 (``y`` a tensor or numpy array)."""
    out = []
    for b0 in range(0, q.shape[0], rows):
        qb, ib = q[b0:b0 + rows].double(), idx[b0:b0 + rows].cpu()
        pts = y[ib.reshape(-1)] if isinstance(y, torch.Tensor) else torch.from_numpy(
            np.asarray(y[ib.reshape(-1).numpy()], dtype=np.float64))
        pts = pts.to(qb).reshape(*ib.shape, -1)
        out.append(torch.linalg.vector_norm(qb.unsqueeze(1) - pts, dim=2))
    return torch.cat(out)


def nearest_two(queries, train, *, feature_map=None, budget: int = DEFAULT_BUDGET, dtype: torch.dtype = torch.float32,
                progress: bool = True) -> Neighbours:
    """The two nearest training points of every query, exact (ties broken arbitrarily).

    Args:
        queries: ``[m, *shape]`` (samples).
        train: ``[n, *shape]`` training points, n >= 2: a tensor or a numpy array (a memory-mapped
            ``.npy`` is read chunk by chunk, never whole, when there is no ``feature_map``).
        feature_map: optional ``phi: [b, *shape] -> [b, ...]`` applied to both (pixel space when None).
        budget: bytes for the temporaries of one block (query block x training chunk).
        dtype: dtype of the distance GEMMs (float32 default; the returned distances are float64).

    Returns :class:`Neighbours` (torch tensors, or numpy arrays when ``queries`` is a numpy array).
    """
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    budget = integer(budget, "budget")
    q = as_batch(queries, "queries")
    y, shape = training_points(train)
    if y.shape[0] < 2:
        raise ValueError(f"train: at least 2 training points are needed for the two nearest, got {y.shape[0]}")
    if feature_map is None and tuple(q.shape[1:]) != shape:
        raise ValueError(f"queries, train: shapes {tuple(q.shape)} and {(y.shape[0], *shape)} do not match")
    fy = y if feature_map is None else features(y.reshape(y.shape[0], *shape), feature_map, 1024, dtype)
    center, spread = sample_center(fy)       # a centre from a few rows: the norms are the one pass before the search
    raw = uses_raw_rows(fy, dtype, center, spread)
    ysq = centred_summary(fy, center=center, dtype=dtype).sqnorm.to(dtype)
    center = center.to(dtype)
    f = fy.shape[1]
    itemsize = torch.finfo(dtype).bits // 8
    block = int(max(1, min(q.shape[0], budget // (4 * f * itemsize))))    # the centred query block: a quarter
    dist, idx = [], []
    for b0 in progress_bar(range(0, q.shape[0], block), enabled=progress, desc="nearest two", leave=False):
        fq = features(q[b0:b0 + block], feature_map, block, dtype)
        if fq.shape[1] != f:
            raise ValueError(f"queries: {fq.shape[1]} features per query, {f} per training point")
        best_i = top2_chunks(fq - center, fy, center, ysq, budget=budget - fq.shape[0] * f * itemsize, raw=raw)
        exact = exact_distances(fq, fy, best_i)
        order = exact.argsort(dim=1, stable=True)
        dist.append(exact.gather(1, order).cpu())
        idx.append(best_i.gather(1, order).cpu())
    out = Neighbours(torch.cat(dist), torch.cat(idx))
    if isinstance(queries, np.ndarray):
        return Neighbours(out.distances.numpy(), out.indices.numpy())
    return out


def sharded_nearest_two(queries, shard, *, group=None, feature_map=None, budget: int = DEFAULT_BUDGET,
                        dtype: torch.dtype = torch.float32, progress: bool = True) -> Neighbours:
    """:func:`nearest_two` over a training set split across ``torch.distributed`` ranks.

    Every rank passes the same ``queries`` and its own ``shard`` of training rows (at least 2; global
    indices follow rank order, rank 0's rows first); each finds its shard's two nearest points, and
    the per-shard lists (exact float64 distances) are gathered and merged, so every rank returns the
    two nearest points of the whole set, as :func:`nearest_two` on the union would (ties aside).
    """
    local = nearest_two(queries, shard, feature_map=feature_map, budget=budget, dtype=dtype, progress=progress)
    dist_, idx = torch.as_tensor(local.distances), torch.as_tensor(local.indices)
    sizes = gathered(torch.tensor([len(shard)]), group).reshape(-1)
    start = int(sizes[:world(group)[0]].sum())
    dist_ = gathered(dist_, group).permute(1, 0, 2).reshape(dist_.shape[0], -1)
    idx = gathered(idx + start, group).permute(1, 0, 2).reshape(idx.shape[0], -1)
    best, pos = dist_.topk(2, dim=1, largest=False, sorted=True)
    out = Neighbours(best, idx.gather(1, pos))
    if isinstance(queries, np.ndarray):
        return Neighbours(out.distances.numpy(), out.indices.numpy())
    return out
