"""Squared distances between a batch and a large point set, streamed in chunks by GEMM.

``||x_b - y_j||^2 = ||x_b||^2 - 2 x_b . y_j + ||y_j||^2``: one matrix product per chunk of y, so the
work runs at the machine's GEMM rate, and memory stays bounded: only ``[B, c]`` blocks are ever
allocated, with the chunk length ``c`` chosen from a byte budget. No ``[B, n, d]`` tensor exists.
"""
from __future__ import annotations

import torch

DEFAULT_BUDGET = 64 * 2 ** 20
"""Default memory budget (bytes) for the temporaries of one chunk: 64 MiB."""


def chunk_length(batch: int, n: int, itemsize: int, budget: int = DEFAULT_BUDGET, temporaries: int = 3) -> int:
    """Largest chunk length ``c <= n`` with ``temporaries * batch * c * itemsize <= budget`` (at least 1)."""
    if budget <= 0:
        raise ValueError(f"budget: must be a positive number of bytes, got {budget!r}")
    return int(max(1, min(n, budget // max(1, temporaries * batch * itemsize))))


def squared_norms(y: torch.Tensor, block_bytes: int = 4 * 2 ** 20) -> torch.Tensor:
    """Row norms ``||y_j||^2`` of a ``[n, d]`` matrix, accumulated in float64, then cast back.

    Rows are converted ``block_bytes`` of float64 at a time, so the temporary stays small.
    """
    rows = max(1, block_bytes // (8 * max(1, y.shape[1])))
    return torch.cat([torch.bmm((c := b.double()).unsqueeze(1), c.unsqueeze(2)).reshape(-1)
                      for b in y.split(rows)]).to(y.dtype)


def sq_distance_chunks(x: torch.Tensor, y: torch.Tensor, y_sqnorm: torch.Tensor | None = None, *,
                       budget: int = DEFAULT_BUDGET, temporaries: int = 3):
    """Yield ``(j0, j1, d2)`` with ``d2[b, j - j0] = ||x_b - y_j||^2`` for consecutive chunks of ``y``.

    ``x`` is ``[B, d]``, ``y`` is ``[n, d]`` (same dtype and device); ``y_sqnorm`` (``[n]``) may be
    passed to avoid recomputing it. ``temporaries`` is how many ``[B, c]`` blocks the caller keeps
    alive per chunk (the budget covers them all; the caller drops its references before asking
    for the next chunk, so blocks of consecutive chunks never coexist). Distances are clamped at 0 (rounding can make the
    expanded form slightly negative).
    """
    if y_sqnorm is None:
        y_sqnorm = squared_norms(y)
    x_sqnorm = squared_norms(x).unsqueeze(1)
    c = chunk_length(x.shape[0], y.shape[0], x.element_size(), budget, temporaries)
    for j0 in range(0, y.shape[0], c):
        j1 = min(j0 + c, y.shape[0])
        d2 = torch.addmm(y_sqnorm[j0:j1].unsqueeze(0), x, y[j0:j1].T, beta=1, alpha=-2)
        yield j0, j1, d2.add_(x_sqnorm).clamp_(min=0)
        del d2                                        # free this block before the next one is allocated
