"""Exact nearest and second-nearest training points, by GEMM, streamed over training chunks.

For queries ``q_b`` and training points ``y_j`` (after an optional feature map ``phi``), the squared
distances ``||phi(q_b) - phi(y_j)||^2 = ||q||^2 - 2 q.y + ||y||^2`` come chunk by chunk from
:func:`memgen.pairwise.sq_distance_chunks` (one matrix product per chunk, memory bounded by a byte
budget, never ``[m, n, d]``); a running top-2 per query is merged with each chunk's top-2. The
features are centred on the training mean first (distances are translation invariant; centring keeps
the expansion accurate in float32), and the two distances returned are recomputed directly,
``||phi(q) - phi(y_j)||`` accumulated in float64, from the feature vectors of the two selected points.
Memory: one centred copy of the training features plus the byte budget.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from memgen.checks import as_batch, as_points, integer
from memgen.pairwise import DEFAULT_BUDGET, squared_norms, sq_distance_chunks
from memgen.progress import progress_bar


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


def nearest_two(queries, train, *, feature_map=None, budget: int = DEFAULT_BUDGET, dtype: torch.dtype = torch.float32,
                progress: bool = True) -> Neighbours:
    """The two nearest training points of every query, exact (ties broken arbitrarily).

    Args:
        queries: ``[m, *shape]`` (samples).
        train: ``[n, *shape]`` training points, n >= 2.
        feature_map: optional ``phi: [b, *shape] -> [b, ...]`` applied to both (pixel space when None).
        budget: bytes for the temporaries of one block (query block x training chunk).
        dtype: dtype of the distance GEMMs (float32 default; the returned distances are float64).

    Returns :class:`Neighbours` (torch tensors, or numpy arrays when ``queries`` is a numpy array).
    """
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    budget = integer(budget, "budget")
    q = as_batch(queries, "queries")
    y = as_points(train, "train")
    if y.shape[0] < 2:
        raise ValueError(f"train: at least 2 training points are needed for the two nearest, got {y.shape[0]}")
    if feature_map is None and tuple(q.shape[1:]) != tuple(y.shape[1:]):
        raise ValueError(f"queries, train: shapes {tuple(q.shape)} and {tuple(y.shape)} do not match")
    fy = features(y, feature_map, 1024, dtype)
    center = fy.mean(0)                        # any centre will do: distances are translation invariant
    fy = fy - center
    ysq = squared_norms(fy)
    f = fy.shape[1]
    block = int(max(1, min(q.shape[0], budget // (16 * f))))    # bounds the [block, f] temporaries of the recomputation
    dist, idx = [], []
    for b0 in progress_bar(range(0, q.shape[0], block), enabled=progress, desc="nearest two", leave=False):
        fq = features(q[b0:b0 + block], feature_map, block, dtype)
        if fq.shape[1] != f:
            raise ValueError(f"queries: {fq.shape[1]} features per query, {f} per training point")
        fq = fq - center
        best_d = best_i = None
        for j0, j1, d2 in sq_distance_chunks(fq, fy, ysq, budget=budget, temporaries=2):
            v, i = d2.topk(min(2, j1 - j0), dim=1, largest=False)
            if best_d is not None:
                v, i = torch.cat([best_d, v], 1), torch.cat([best_i, i + j0], 1)
            else:
                i = i + j0
            best_d, pos = v.topk(min(2, v.shape[1]), dim=1, largest=False)
            best_i = i.gather(1, pos)
        exact = torch.stack([torch.linalg.vector_norm(fq - fy[best_i[:, k]], dim=1, dtype=torch.float64)
                             for k in range(2)], 1)
        order = exact.argsort(dim=1, stable=True)
        dist.append(exact.gather(1, order).cpu())
        idx.append(best_i.gather(1, order).cpu())
    out = Neighbours(torch.cat(dist), torch.cat(idx))
    if isinstance(queries, np.ndarray):
        return Neighbours(out.distances.numpy(), out.indices.numpy())
    return out
