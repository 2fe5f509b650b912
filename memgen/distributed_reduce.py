"""Exact reductions over a training set split across ``torch.distributed`` ranks.

Both exact computations over a training set are reductions: the nearest two points of a query merge
per-shard top-2 lists, and the empirical posterior merges per-shard log-sum-exp states
(:func:`toymodels.empirical._torch.merge`). Each rank holds one shard of rows (e.g. its slice of a
memory-mapped ``.npy``: ``np.load(path, mmap_mode='r')[lo:hi]``), every rank is called with the same
queries (the usual SPMD pattern under ``torchrun``), and all ranks get the full result. Works with any
backend (gloo on CPU, nccl on GPU) and any number of nodes; without an initialized process group
the world is one process and nothing is communicated.

The reductions only; their users are the sharded exact computations: :mod:`toymodels.empirical.sharded` (the
empirical denoiser over a sharded training set) and :mod:`compare.neighbours` (the nearest two points).
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world(group=None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group``; ``(0, 1)`` when no process group is initialized."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def shard_range(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of rank ``rank`` out of ``size`` for ``n`` rows: contiguous, sizes differing by at most 1."""
    if not (0 <= rank < size):
        raise ValueError(f"rank: expected 0 <= rank < {size}, got {rank}")
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def gathered(t: torch.Tensor, group=None) -> torch.Tensor:
    """``[world, *t.shape]``: the same-shaped tensor ``t`` of every rank, stacked in rank order."""
    _, size = world(group)
    if size == 1:
        return t.unsqueeze(0)
    parts = [torch.empty_like(t) for _ in range(size)]
    dist.all_gather(parts, t.contiguous(), group=group)
    return torch.stack(parts)


def all_sum(t: torch.Tensor, group=None) -> torch.Tensor:
    """Sum of ``t`` over the ranks (a new tensor)."""
    out = t.clone()
    if world(group)[1] > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return out


def all_max(t: torch.Tensor, group=None) -> torch.Tensor:
    """Elementwise maximum of ``t`` over the ranks (a new tensor)."""
    out = t.clone()
    if world(group)[1] > 1:
        dist.all_reduce(out, op=dist.ReduceOp.MAX, group=group)
    return out
