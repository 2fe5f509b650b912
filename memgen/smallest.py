"""The K smallest entries of each row of a streamed matrix, and float64 distances of selected pairs.

:func:`merge_smallest` folds one block ``s = col + alpha * g`` (``g`` ``[B, c]`` a GEMM's output,
``col`` ``[c]`` a per-column term, ``alpha`` a scalar) into a running list of the K smallest values
per row and their column indices, in place. On CPU it is one fused numba pass over ``g`` that keeps
each row's current K-th value as a threshold (an entry below it is inserted into the sorted list):
no ``[B, c]`` temporary and one read of the block, so a search by GEMM costs little beyond its
products; on other devices it is ``torch.topk`` of the block merged with the list. Its rows are handed
out to the threads in 8 parts (dynamic): on 2 cores beside one busy process a ``[1000, 10000]`` block took
13.0 ms with each thread's half fixed in advance, 9.1 ms in 8 parts (4.9 ms either way on the quiet machine).

Every entry not in the list is >= the final K-th value (an entry is rejected or evicted only when it
is >= the K-th value at that time, and that value never increases), which is what a certificate of
the search needs (:func:`compare.neighbours.nearest_two`).

:func:`pair_sq_distances` gives ``||q_b - y_{idx[b, k]}||^2`` accumulated in float64 from the rows as
stored (float32 differences are exact in float64; the sum in any order, within ``gamma_d`` of its
value), reading only the selected rows.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .pairwise import host_rows
from .threads import numba_like_torch


@numba.njit(parallel=True, cache=True)
def _merge_rows(g, col, alpha, best_v, best_i, j0):
    B, c = g.shape
    k = best_v.shape[1]
    for b in numba.prange(B):
        t = best_v[b, k - 1]
        for j in range(c):
            x = col[j] + alpha * g[b, j]
            if x < t:
                p = k - 1
                while p > 0 and best_v[b, p - 1] > x:
                    best_v[b, p] = best_v[b, p - 1]
                    best_i[b, p] = best_i[b, p - 1]
                    p -= 1
                best_v[b, p] = x
                best_i[b, p] = j0 + j
                t = best_v[b, k - 1]


def new_list(rows: int, k: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """An empty running list: values ``[rows, k]`` at +inf, indices ``[rows, k]`` at -1."""
    return (torch.full((rows, k), float("inf"), dtype=dtype, device=device),
            torch.full((rows, k), -1, dtype=torch.int64, device=device))


def merge_smallest(g: torch.Tensor, col: torch.Tensor, alpha: float, best_v: torch.Tensor, best_i: torch.Tensor,
                   j0: int) -> None:
    """Fold the block ``col[j] + alpha * g[b, j]`` (columns ``j0 + j``) into the sorted running list
    ``(best_v, best_i)`` ``[B, K]`` of each row's K smallest values, in place (``g`` is overwritten
    off CPU)."""
    if g.device.type == "cpu" and g.is_contiguous():
        a = g.numpy()
        with numba_like_torch(chunk=-(-a.shape[0] // 8)):      # rows in 8 parts: see the module doc
            _merge_rows(a, col.numpy(), a.dtype.type(alpha), best_v.numpy(), best_i.numpy(), j0)
        return
    s = g.mul_(alpha).add_(col)
    v, i = s.topk(min(best_v.shape[1], s.shape[1]), dim=1, largest=False)
    v, i = torch.cat([best_v, v], 1), torch.cat([best_i, i + j0], 1)
    v, pos = v.topk(best_v.shape[1], dim=1, largest=False, sorted=True)
    best_v.copy_(v)
    best_i.copy_(i.gather(1, pos))


@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})       # a vectorized sum
def _pair_sq(q, y, qi, yi, out):
    for p in numba.prange(qi.shape[0]):
        a, j = qi[p], yi[p]
        acc = 0.0
        for i in range(q.shape[1]):
            diff = np.float64(q[a, i]) - np.float64(y[j, i])
            acc += diff * diff
        out[p] = acc


def pair_sq_distances(q: torch.Tensor, y, qi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
    """``||q_{qi[p]} - y_{yi[p]}||^2`` ``[P]`` accumulated in float64 (``q`` ``[B, d]`` a tensor, ``y``
    ``[n, d]`` a tensor or numpy array, memory-mapped included), on the CPU."""
    qi, yi = qi.reshape(-1).cpu(), yi.reshape(-1).cpu()
    ys = host_rows(y)
    if q.device.type == "cpu" and ys is not None and ys.dtype in (np.float32, np.float64):
        out = np.empty(qi.shape[0], dtype=np.float64)
        with numba_like_torch(work=qi.shape[0] * q.shape[1]):
            _pair_sq(np.ascontiguousarray(q.detach().numpy()), ys, qi.numpy(), yi.numpy(), out)
        return torch.from_numpy(out)
    pts = y[yi.to(y.device)] if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y[yi.numpy()]))
    return (q[qi.to(q.device)].double() - pts.to(q.device, torch.float64)).square_().sum(1).cpu()
