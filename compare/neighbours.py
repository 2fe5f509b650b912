"""Exact nearest and second-nearest training points, by GEMM, streamed over training chunks.

For queries ``q_b`` and training points ``y_j`` (after an optional feature map ``phi``), the search
streams ``s_j = ||v_j||^2 - 2 u.v_j = ||u - v_j||^2 - ||u||^2`` (``u = q - c``, ``v_j = y_j - c``; the
rows are centred as they are read, or read in place with ``c = 0`` when the data's centre lies
within its spread) by one ``[B, f] x [f, c]`` GEMM per block of queries and chunk of training
points, keeps a few candidates per query in one fused pass over each GEMM's output
(:mod:`memgen.smallest`), recomputes their distances in float64 and certifies the pair against a
bound on the search's rounding (:func:`nearest_two`). Memory: the byte budget (the training set is
never copied; with a ``feature_map``, its features are).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from memgen.checks import all_finite, as_batch, integer
from memgen.pairwise import (DEFAULT_BUDGET, centred_chunks, centred_sq_norms, chunk_length, sample_center, training_points,
                             uses_raw_rows)
from memgen.smallest import merge_smallest, new_list, pair_sq_distances
from memgen.progress import progress_bar
from memgen.distributed_reduce import gathered, world


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
    if not all_finite(out):
        raise ValueError("feature_map: returned NaN or inf")
    return out


CANDIDATES = 8
"""Training points kept per query by the search and re-ranked in float64 (enough to certify the pair)."""


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def gamma(k: int, dtype: torch.dtype) -> float:
    """``k u / (1 - k u)``: the bound on the relative rounding error of a k-term sum in ``dtype``."""
    ku = k * unit_roundoff(dtype)
    return ku / (1 - ku) if ku < 0.5 else float("inf")


def equal_parts(total: int, most: int) -> int:
    """The length of ``ceil(total / most)`` nearly equal parts of ``total`` (none longer than ``most``)."""
    return -(-total // -(-total // max(1, most)))


def search_shape(m: int, n: int, f: int, dtype: torch.dtype, budget: int, centred: bool) -> tuple[int, int, bool]:
    """``(block, chunk, keep_norms)`` of :func:`nearest_two`'s search of m queries over n points of f
    features: the query block takes a quarter of the budget left after the ``[n]`` squared norms (kept
    when they fit in an eighth), the ``[block, chunk]`` GEMM output and, for centred rows, the
    ``[chunk, f]`` buffer the rest; both in equal parts."""
    item = torch.finfo(dtype).bits // 8
    keep = n * item <= budget // 8
    rest = budget - n * item * keep
    block = equal_parts(m, min(m, rest // (4 * f * item)))
    return block, search_chunk(block, n, f, dtype, rest, centred), keep


def search_chunk(block: int, n: int, f: int, dtype: torch.dtype, budget: int, centred: bool) -> int:
    """Training rows per GEMM for a query block: what ``budget`` holds besides the block's ``[block, f]``."""
    item = torch.finfo(dtype).bits // 8
    c = chunk_length(block, n, item, budget - block * f * item, temporaries=1, row_bytes=f * item if centred else 0)
    return equal_parts(n, c)


def candidates(u: torch.Tensor, y, shift: torch.Tensor | None, norms: torch.Tensor | None, k: int, *, chunk: int,
               buf: torch.Tensor | None = None):
    """One pass of the queries ``u`` ``[B, f]`` (already shifted) over the training rows ``y``.

    Returns ``(values, indices, radius_sq)``: each query's k smallest ``s_j = ||v_j||^2 - 2 u.v_j``
    (``v_j = y_j - shift``, or ``y_j`` read in place when ``shift`` is None), sorted, every other point's
    ``s_j`` being >= the k-th (:mod:`memgen.smallest`), and the largest computed ``||v_j||^2``. The
    squared norms are computed per chunk, or read from ``norms`` ``[n]`` once it holds them (a tensor of
    NaN is filled in by this pass). ``buf``: memory for the ``[B, chunk]`` GEMM output (allocated when None
    or too small), so that a search of many query blocks reuses one.
    """
    B, f = u.shape
    n, c = y.shape[0], chunk
    if shift is None:
        chunks = ((j0, min(j0 + c, n), y[j0:j0 + c]) for j0 in range(0, n, c))
    else:
        chunks = centred_chunks(y, shift, c, u.dtype, u.device)
    if buf is None or buf.numel() < B * c:
        buf = torch.empty(B * c, dtype=u.dtype, device=u.device)
    best_v, best_i = new_list(B, k, u.dtype, u.device)
    radius_sq = torch.zeros((), dtype=u.dtype, device=u.device)
    for j0, j1, v in chunks:
        if norms is not None and not bool(norms[j0].isnan()):
            sq = norms[j0:j1]
        else:
            sq = torch.linalg.vector_norm(v, dim=1).square_()
            if not bool(torch.isfinite(sq).all()):
                raise ValueError(f"train: contains NaN or inf (or squared norms beyond {u.dtype})")
            if norms is not None:
                norms[j0:j1] = sq
        radius_sq = torch.maximum(radius_sq, sq.max())
        g = torch.mm(u, v.T, out=buf[:B * (j1 - j0)].view(B, j1 - j0))
        merge_smallest(g, sq, -2.0, best_v, best_i, j0)
    return best_v, best_i, float(radius_sq)


def search_error(f: int, dtype: torch.dtype, radius_sq: float, base: torch.Tensor) -> torch.Tensor:
    """Bound ``[B]`` on ``|s~_j - (||u - v_j||^2 - ||u||^2)|`` for the search's ``s~_j`` (:func:`candidates`)
    in ``dtype``, given the largest computed ``||v~_j||^2`` and ``base = ||u||^2`` (float64, exact ``u``).

    ``(2 gamma_f + 8 u)(R^2 + 2 |u| R)``: the GEMM's ``gamma_f |u||v|`` (any summation order), the
    norm's ``(gamma_f + 3 u) |v|^2``, one rounding of the sum, and the rounding of ``u`` and ``v_j`` to
    ``dtype`` (``2 u (|v|^2 + 2 |u||v|)``), with a factor of 2 to spare; ``R`` and ``|u|`` are inflated
    for the rounding of their own computation.
    """
    gam, unit = gamma(f, dtype), unit_roundoff(dtype)
    r = (radius_sq * (1 + 2 * gam + 8 * unit)) ** 0.5
    a = base.sqrt() * (1 + 2 * unit)
    return (2 * gam + 8 * unit) * (r * r + 2 * a * r)


def certified_pairs(q: torch.Tensor, y, shift: torch.Tensor | None, best_v: torch.Tensor, best_i: torch.Tensor,
                    radius_sq: float):
    """``(sq, idx, ok)``: the two candidates nearest in float64 (``||q_b - y_j||^2`` ``[B, 2]``, ascending,
    and their indices) and whether the pair is certified: every other training point is at least as far
    as the second, whatever the rounding of the search (see :func:`nearest_two`).

    Each candidate's exact distance is at least ``s_j + ||u||^2 - err``; only the candidates whose lower
    bound falls below the farther of the first two are recomputed in float64.
    """
    B, k = best_i.shape
    f = q.shape[1]
    rows = torch.arange(B)
    best_i = best_i.cpu()
    c = None if shift is None else shift.to(q)
    base = centred_sq_norms(q, c).cpu()                                  # ||u||^2 = ||q - c||^2
    sv = best_v.double().cpu()
    exact = torch.full((B, k), float("inf"), dtype=torch.float64)
    exact[:, :2] = pair_sq_distances(q, y, rows.repeat_interleave(2), best_i[:, :2]).reshape(B, 2)
    far = exact[:, :2].max(1).values
    slack = 8 * gamma(f + 4, torch.float64) * (sv.abs().amax(1) + base + far)
    lower = sv + (base - search_error(f, best_v.dtype, radius_sq, base) - slack).unsqueeze(1)
    need = lower < far.unsqueeze(1)
    need[:, :2] = False
    b, p = need.nonzero(as_tuple=True)
    exact[b, p] = pair_sq_distances(q, y, b, best_i[b, p])
    order = exact.argsort(dim=1, stable=True)[:, :2]
    sq, idx = exact.gather(1, order), best_i.gather(1, order)
    ok = torch.ones(B, dtype=torch.bool) if k == y.shape[0] else sq[:, 1] <= lower[:, -1]
    return sq, idx, ok & (best_i >= 0).all(1) & torch.isfinite(sv).all(1)     # an unfilled slot: overflow


def nearest_block(q: torch.Tensor, y, shift: torch.Tensor | None, norms: torch.Tensor | None, *, budget: int,
                  buf: torch.Tensor | None = None):
    """``(sq, idx, ok)`` of :func:`certified_pairs` for the query features ``q`` ``[B, f]`` (``buf``: see
    :func:`candidates`)."""
    u = q if shift is None else q - shift.to(q)
    chunk = search_chunk(q.shape[0], y.shape[0], q.shape[1], q.dtype, budget, shift is not None)
    best_v, best_i, radius_sq = candidates(u, y, shift, norms, min(CANDIDATES, y.shape[0]), chunk=chunk,
                                           buf=buf)
    return certified_pairs(q, y, shift, best_v, best_i, radius_sq)


def nearest_two(queries, train, *, feature_map=None, budget: int = DEFAULT_BUDGET, dtype: torch.dtype = torch.float32,
                progress: bool = True) -> Neighbours:
    """The two nearest training points of every query, exact (ties broken arbitrarily).

    The search streams ``s_j = ||v_j||^2 - 2 u.v_j`` (``= ||u - v_j||^2 - ||u||^2``) in ``dtype``, one
    ``[B, f] x [f, c]`` GEMM per block of queries and chunk of training points, with the rows
    ``v_j = y_j - c`` centred as they are read (``u = q - c``) or, when the data's centre lies within
    its spread, read in place (``c = 0``), and keeps the :data:`CANDIDATES` smallest ``s_j`` of each
    query; their distances are recomputed as ``||q - y_j||^2`` accumulated in float64 and the two
    nearest returned. Certified: with ``gamma_f = f u / (1 - f u)`` (``u`` the unit roundoff of
    ``dtype``), every computed ``s_j`` is within ``(2 gamma_f + 8 u)(R^2 + 2 |u| R)`` of its exact
    value (``R`` the largest ``|v_j|``), so when the second candidate's float64 distance is below the
    last candidate's ``s + ||u||^2`` by more than that (and than float64 rounding), no other point is
    nearer. Queries not certified so (near-ties, far queries) are searched again in float64, whose
    pair is exact up to ties within float64 rounding. Distances are those of the queries in ``dtype``
    to the training points as stored.

    Args:
        queries: ``[m, *shape]`` (samples).
        train: ``[n, *shape]`` training points, n >= 2: a tensor or a numpy array (a memory-mapped
            ``.npy`` is read chunk by chunk, never whole, when there is no ``feature_map``).
        feature_map: optional ``phi: [b, *shape] -> [b, ...]`` applied to both (pixel space when None).
        budget: bytes for what one block allocates: the shifted query block, one ``[B, c]`` GEMM output,
            the chunk buffer when rows are centred, and the ``[n]`` squared norms when they fit in an eighth.
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
    center, spread = sample_center(fy)        # a centre from a few rows; any centre is exact
    n, f = fy.shape
    device = fy.device if isinstance(fy, torch.Tensor) else torch.device("cpu")
    searches = {}
    for dt in (dtype, torch.float64):         # the search, and the float64 one for queries it cannot certify
        shift = None if uses_raw_rows(fy, dt, center, spread) else center.to(dt)
        block, chunk, keep = search_shape(q.shape[0], n, f, dt, budget, shift is not None)
        searches[dt] = (block, shift, torch.full((n,), float("nan"), dtype=dt, device=device) if keep else None,
                        budget - n * (torch.finfo(dt).bits // 8) * keep, chunk)
    block, shift, norms, rest, chunk = searches[dtype]
    buf = torch.empty(block * chunk, dtype=dtype, device=device)      # the GEMM output of every block
    dist, idx = [], []
    for b0 in progress_bar(range(0, q.shape[0], block), enabled=progress, desc="nearest two", leave=False):
        fq = features(q[b0:b0 + block], feature_map, block, dtype)
        if fq.shape[1] != f:
            raise ValueError(f"queries: {fq.shape[1]} features per query, {f} per training point")
        sq, best, ok = nearest_block(fq.to(device), fy, shift, norms, budget=rest, buf=buf)
        if not bool(ok.all()) and dtype != torch.float64:
            bad = (~ok).nonzero().reshape(-1)
            _, shift64, norms64, rest64, _ = searches[torch.float64]
            sq[bad], best[bad], _ = nearest_block(fq[bad].to(device, torch.float64), fy, shift64, norms64, budget=rest64)
        if bool((best < 0).any()):
            raise ValueError("queries: too far from the training points for float64 distances")
        dist.append(sq.sqrt())
        idx.append(best)
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
