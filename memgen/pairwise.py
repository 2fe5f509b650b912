"""Squared distances between a batch and a large point set, streamed in chunks by GEMM.

``||x_b - y_j||^2 = ||x_b||^2 - 2 x_b . y_j + ||y_j||^2``: one matrix product per chunk of y, so the
work runs at the machine's GEMM rate, and memory stays bounded: only ``[B, c]`` blocks (and, when the
chunk is centred or converted, one ``[c, d]`` buffer) are ever allocated, with the chunk length ``c``
chosen from a byte budget. No ``[B, n, d]`` tensor exists and the point set is never copied whole.

Accuracy in float32: the expansion cancels when the points are far from the origin, so the chunks
are centred on a stored centre ``c`` (a ``[d]`` vector) as they are read, ``v_j = y_j - c``, and the
queries likewise, ``u_b = x_b - c``; the distances are translation invariant. The point set itself
may be a torch tensor or a numpy array (a memory-mapped ``.npy`` included: only the rows of one chunk
are read at a time).
"""
from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import torch

from .checks import as_points
from .threads import numba_like_torch

DEFAULT_BUDGET = 64 * 2 ** 20
"""Default memory budget (bytes) for the temporaries of one chunk: 64 MiB."""


def chunk_length(batch: int, n: int, itemsize: int, budget: int = DEFAULT_BUDGET, temporaries: int = 3,
                 row_bytes: int = 0) -> int:
    """Largest ``c <= n`` with ``temporaries * batch * c * itemsize + c * row_bytes <= budget`` (at least 1).

    ``row_bytes`` is what one training row costs in a chunk buffer (0 when the chunk is a view).
    """
    if budget <= 0:
        raise ValueError(f"budget: must be a positive number of bytes, got {budget!r}")
    return int(max(1, min(n, budget // max(1, temporaries * batch * itemsize + row_bytes))))


def squared_norms(y: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Row norms ``||y_j||^2`` of a ``[n, d]`` matrix, accumulated in float64 (:func:`centred_sq_norms`),
    then cast to ``dtype`` (default: the dtype of ``y``), on ``y``'s device."""
    return centred_sq_norms(y).to(y.device, dtype or y.dtype)


@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})       # a vectorized sum
def _centred_sq(y, c, out):
    for j in numba.prange(y.shape[0]):
        acc = 0.0
        for i in range(y.shape[1]):
            diff = np.float64(y[j, i]) - c[i]
            acc += diff * diff
        out[j] = acc


@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})       # a vectorized sum
def _dots(y, c, out):
    for j in numba.prange(y.shape[0]):
        acc = 0.0
        for i in range(y.shape[1]):
            acc += np.float64(y[j, i]) * c[i]
        out[j] = acc


def _float64_rows(kernel, y, c: torch.Tensor) -> torch.Tensor | None:
    """``kernel(rows, c, out)`` over the rows of ``y`` read in place, when numba can (float32/64 rows on the
    CPU; on one thread when the work is short, :func:`memgen.threads.numba_like_torch`); else None."""
    host = host_rows(y)
    if host is None or host.dtype not in (np.float32, np.float64):
        return None
    out = np.empty(host.shape[0], dtype=np.float64)
    with numba_like_torch(work=host.size):
        kernel(host, c.numpy(), out)
    return torch.from_numpy(out)


def centred_sq_norms(y, center: torch.Tensor | None = None) -> torch.Tensor:
    """``||y_j - c||^2`` ``[n]`` in float64 for the rows of ``y`` (tensor or numpy ``[n, d]``, memory-mapped
    included) as stored and ``c`` = ``center`` in float64 (default 0): each difference rounded once in
    float64 (exact for float32 rows and a float32 centre), the sum within ``gamma_d`` of its value in any
    order.

    Float32/64 rows on the CPU: one numba pass reading them in place, returned on the CPU; other rows:
    16 MiB blocks in torch, returned on their device.
    """
    c = torch.zeros(y.shape[1], dtype=torch.float64) if center is None else center.detach().double().cpu()
    out = _float64_rows(_centred_sq, y, c)
    if out is not None:
        return out
    return torch.cat([b.double().sub_(c.to(b.device)).square_().sum(1) for _, _, b in row_blocks(y)])


def row_dots(u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``u_b . c`` ``[B]`` in float64 for the rows of ``u`` as stored and ``c`` ``[d]`` in float64 (each
    product rounded once in float64, the sum within ``gamma_d`` in any order), on ``u``'s device: one
    numba pass on the CPU, a float64 product elsewhere."""
    c = c.detach().double()
    out = _float64_rows(_dots, u, c.cpu())
    return u.double() @ c.to(u.device) if out is None else out.to(u.device)


def row_blocks(y, block_bytes: int = 16 * 2 ** 20):
    """Yield ``(j0, j1, block)``: consecutive rows of ``y`` (tensor or numpy ``[n, d]``) as tensors of the
    data's dtype (a view of a tensor; a copy of the rows of a numpy array), ``block_bytes`` at a time."""
    n, d = y.shape
    rows = max(1, block_bytes // (y.dtype.itemsize * max(1, d)))
    for j0 in range(0, n, rows):
        j1 = min(j0 + rows, n)
        b = y[j0:j1]
        yield j0, j1, (b if isinstance(b, torch.Tensor) else torch.from_numpy(np.array(b)))


def training_points(train):
    """``[n, d]`` view of the training set and its event shape, never a copy of float data.

    Float tensors and memory-mapped or read-only arrays are kept as they are (checked for NaN/inf
    block by block by :func:`centred_summary`: a whole-set check would allocate several times the
    set's size); lists, integer data and in-memory numpy arrays go through
    :func:`memgen.checks.as_points` (which shares the memory of float data).
    """
    if isinstance(train, torch.Tensor) and train.is_floating_point():   # NaN/inf: checked block by block
        if train.dim() < 2 or train.shape[0] == 0:
            raise ValueError(f"train: expected a non-empty point set [n, *shape] (at least 2-D), got {tuple(train.shape)}")
        return train.reshape(train.shape[0], -1), tuple(train.shape[1:])
    if isinstance(train, np.memmap) or (isinstance(train, np.ndarray) and not train.flags.writeable):
        if train.ndim < 2 or train.shape[0] == 0:
            raise ValueError(f"train: expected a non-empty point set [n, *shape] (at least 2-D), got {train.shape}")
        if not np.issubdtype(train.dtype, np.floating):
            raise TypeError(f"train: expected a real floating-point array, got dtype {train.dtype}")
        return train.reshape(train.shape[0], -1), tuple(train.shape[1:])
    y = as_points(train, "train")
    return y.reshape(y.shape[0], -1), tuple(y.shape[1:])


class Centred(NamedTuple):
    """Summary of a point set read once, block by block, in float64: ``center`` ``[d]`` (the mean),
    ``sqnorm`` ``[n]`` (``||y_j - center||^2``) and ``radius`` (``max_j ||y_j - center||``)."""

    center: torch.Tensor
    sqnorm: torch.Tensor
    radius: float


def column_sum(y, name: str = "train") -> torch.Tensor:
    """``sum_j y_j`` ``[d]`` in float64 (per-block sums in the data's precision, blocks added in float64);
    rejects NaN/inf (which make a column's sum NaN/inf)."""
    total = None
    for _, _, b in row_blocks(y):
        part = b.sum(0).double()
        total = part if total is None else total.add_(part)
    if not bool(torch.isfinite(total).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return total


def host_rows(y) -> np.ndarray | None:
    """The rows of ``y`` as a numpy array without a copy, for numpy and numba code on one thread or in
    place: ``y`` itself if it is one (a memory-mapped array as a plain view), a CPU tensor's memory unless
    numpy has no such dtype (bfloat16); None for those and for tensors on other devices."""
    if isinstance(y, np.ndarray):
        return np.asarray(y)
    return y.detach().numpy() if y.device.type == "cpu" and y.dtype != torch.bfloat16 else None


def sample_center(y, rows: int = 256) -> tuple[torch.Tensor, float]:
    """Mean (float64 ``[d]``) of at most ``rows`` evenly spaced rows of ``y``, and their largest distance
    to it: a centre for the GEMM expansion (any centre is exact; one near the data keeps float32
    accurate) and the spread of the data around it, at the cost of a few rows."""
    idx = np.linspace(0, y.shape[0] - 1, min(rows, y.shape[0])).round().astype(np.int64)
    # in numpy, on one thread: a few small operations, each of which torch would hand to every thread
    # (and wait, under load, for the one that shares its core)
    host = host_rows(y)
    if host is not None:
        pts = host[idx].astype(np.float64)
    else:
        pts = y.detach()[torch.from_numpy(idx).to(y.device)].double().cpu().numpy()
    with np.errstate(invalid="ignore", over="ignore"):     # NaN/inf rows: rejected by the search's norms
        center = pts.mean(0)
        radius = float(np.sqrt(((pts - center) ** 2).sum(1).max()))
    return torch.from_numpy(center).to(y.device if isinstance(y, torch.Tensor) else "cpu"), radius


def centred_norms(v: torch.Tensor, name: str = "train") -> torch.Tensor:
    """``||v_j||^2`` ``[c]`` of centred rows, accumulated in float64 (:func:`centred_sq_norms`); rejects NaN/inf."""
    sq = centred_sq_norms(v).to(v.device)
    if not bool(torch.isfinite(sq).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return sq


def centred_summary(y, name: str = "train", center: torch.Tensor | None = None,
                    dtype: torch.dtype | None = None) -> Centred:
    """:class:`Centred` of ``y`` (tensor or numpy ``[n, d]``), one block of rows at a time (``center``
    defaults to the mean of ``y``; a shard passes the mean of the whole set). The norms are those of
    the rows centred in ``dtype`` (default: the data's), exactly as the streaming kernels centre them.

    Never holds more than one block of rows (16 MiB) at a time, so a memory-mapped set stays on disk.
    """
    if center is None:
        center = column_sum(y, name) / y.shape[0]
    dtype = dtype or (torch.float64 if y.dtype in (torch.float64, np.float64) else torch.float32)
    c = center.to(dtype)
    sq = torch.cat([centred_norms(torch.sub(b, c.to(b.device)).to(dtype), name) for _, _, b in row_blocks(y)])
    return Centred(center, sq, float(sq.max().sqrt()))


def centred_chunks(y, center: torch.Tensor, length: int, dtype: torch.dtype, device=None):
    """Yield ``(j0, j1, v)`` with ``v = y[j0:j1] - center`` in ``dtype`` (``center`` rounded to ``dtype``,
    the difference rounded once), written into one reused buffer.

    ``y`` is a tensor or a numpy array (memory-mapped files included); only one chunk is read at a time.
    The caller must be done with ``v`` before asking for the next chunk.
    """
    n, d = y.shape
    device = y.device if isinstance(y, torch.Tensor) else (device or "cpu")
    buf = torch.empty(min(length, n), d, dtype=dtype, device=device)
    c = center.to(dtype=dtype, device=device)
    for j0 in range(0, n, length):
        j1 = min(j0 + length, n)
        v = buf[:j1 - j0]
        rows = y[j0:j1]
        if isinstance(rows, torch.Tensor):
            torch.sub(rows, c, out=v)              # in the wider of the two dtypes, rounded once
        elif v.device.type == "cpu":
            np.subtract(rows, c.numpy(), out=v.numpy(), casting="unsafe")
        else:
            v.copy_(torch.from_numpy(np.array(rows))).sub_(c)
        yield j0, j1, v


def far_shift(u_sqnorm: torch.Tensor, radius: float):
    """``(lower, offset)`` per query, float64: ``lower = max(0, |u| - R)^2`` bounds every ``||u - v_j||^2``
    from below (``R = max_j |v_j|``) and ``offset = ||u||^2 - lower`` (``2 |u| R - R^2`` for a far query,
    computed without cancellation). Streaming ``||v||^2 - 2 u.v + offset = ||u - v||^2 - lower`` keeps
    the distances of a far query (``|u| >> R``) representable; ``lower`` goes back into the log-normalizer.
    """
    norm = u_sqnorm.sqrt()
    far = norm > radius
    lower = torch.where(far, (norm - radius).square(), torch.zeros_like(norm))
    offset = torch.where(far, radius * (2 * norm - radius), u_sqnorm)
    return lower, offset


def uses_raw_rows(y, dtype: torch.dtype, center: torch.Tensor, radius: float) -> bool:
    """Whether a GEMM may read the rows of ``y`` in place instead of centring a copy of each chunk: ``y`` is
    a tensor of the computation's dtype and its centre is no farther from the origin than its radius,
    so that ``u . y`` rounds like ``u . (y - c)`` up to a factor of 2."""
    return isinstance(y, torch.Tensor) and y.dtype == dtype and float(center.norm()) <= radius


def point_chunks(u: torch.Tensor, y, center: torch.Tensor, v_sqnorm: torch.Tensor | None, offset: torch.Tensor, *,
                 budget: int = DEFAULT_BUDGET, temporaries: int = 2, raw: bool = False):
    """``(rest, chunks)``: the per-query constant ``rest`` [B] (float64) of the distances, and an iterator of
    ``(j0, j1, v, q)`` over consecutive chunks of the training points, ``q_j = ||v_j||^2`` in ``u``'s dtype,
    such that ``||u_b - v_j||^2 - (||u_b||^2 - offset_b) = q_j - 2 u_b.v_j + rest_b``.

    ``u`` ``[B, d]`` are the centred queries, ``v_j = y_j - center`` the centred points (``v`` is the
    chunk ``[c, d]``, read from ``y``), ``v_sqnorm`` ``[n]`` their squared norms (None: computed per
    chunk from ``v``, which also rejects NaN/inf in ``y``). With ``offset = ||u||^2`` the left side is
    ``||u_b - v_j||^2``; any other per-query constant shifts every distance of that query alike
    (softmaxes, top-k and argmins do not change; see :func:`far_shift`). With ``raw``
    (:func:`uses_raw_rows`) the chunk ``v`` is the rows ``y_j`` themselves, read in place, and the
    shift by the centre goes into the per-query constant: ``-2 u.v_j = -2 u.y_j + 2 u.c``.
    The chunk length leaves room in ``budget`` for ``temporaries`` ``[B, c]`` blocks and the ``[c, d]``
    chunk buffer (none with ``raw``).
    """
    B, d = u.shape
    row_bytes = 0 if raw else d * u.element_size()
    c = chunk_length(B, y.shape[0], u.element_size(), budget, temporaries, row_bytes=row_bytes)
    if raw:
        rest = offset + 2 * row_dots(u, center)
        chunks = ((j0, min(j0 + c, y.shape[0]), y[j0:j0 + c]) for j0 in range(0, y.shape[0], c))
    else:
        rest = offset
        chunks = centred_chunks(y, center, c, u.dtype, u.device)

    def with_norms():
        for j0, j1, v in chunks:
            q = v_sqnorm[j0:j1] if v_sqnorm is not None else \
                (centred_norms(v - center.to(v)) if raw else centred_norms(v)).to(u.dtype)
            yield j0, j1, v, q
    return rest.double(), with_norms()


def product_shift(u: torch.Tensor, center: torch.Tensor, raw: bool) -> torch.Tensor | None:
    """What :func:`keep_products` subtracts from a block of ``u . y_j`` read in place: ``u . c`` [B, 1] in
    float64 on the CPU with ``raw``, else None (the chunk is already centred)."""
    return row_dots(u, center).cpu().unsqueeze(1) if raw else None


def keep_products(products: torch.Tensor, j0: int, j1: int, g: torch.Tensor, shift: torch.Tensor | None):
    """``products[:, j0:j1] = g - shift``: the centred products ``u_b . v_j`` of a block ``g`` of GEMM output
    (``u . y_j`` with raw rows, less ``shift = u . c``; :func:`product_shift`), into a float64 CPU tensor.
    A copy then an in-place subtraction: torch's mixed-dtype ``sub(g, shift, out=...)`` into the strided
    view ran on one core, 2.5 times as long (31 ms against 12 ms for a ``[1000, 12500]`` block)."""
    dst = products[:, j0:j1]
    dst.copy_(g)
    if shift is not None:
        dst.sub_(shift)


def shifted_distance_chunks(u: torch.Tensor, y, center: torch.Tensor, v_sqnorm: torch.Tensor | None, offset: torch.Tensor,
                            *, budget: int = DEFAULT_BUDGET, temporaries: int = 2, raw: bool = False,
                            products: torch.Tensor | None = None):
    """Yield ``(j0, j1, v, d2)`` with ``d2[b, j] = ||v_j||^2 - 2 u_b.v_j + offset_b`` for consecutive chunks
    (one ``addmm`` per chunk; the arguments as in :func:`point_chunks`). ``products``, a float64 ``[B, n]``
    CPU tensor, receives the centred products ``u_b . v_j`` of each chunk (:func:`keep_products`)."""
    rest, chunks = point_chunks(u, y, center, v_sqnorm, offset, budget=budget, temporaries=temporaries, raw=raw)
    rest = rest.to(u.dtype).unsqueeze(1)
    shift = product_shift(u, center, raw) if products is not None else None
    for j0, j1, v, q in chunks:
        if products is None:
            d2 = torch.addmm(q.unsqueeze(0), u, v.T, beta=1, alpha=-2)
        else:
            d2 = u @ v.T
            keep_products(products, j0, j1, d2, shift)
            d2.mul_(-2).add_(q)
        yield j0, j1, v, d2.add_(rest)
        del d2                                        # free this block before the next one is allocated


def sq_distance_chunks(x: torch.Tensor, y: torch.Tensor, y_sqnorm: torch.Tensor | None = None, *,
                       budget: int = DEFAULT_BUDGET, temporaries: int = 3):
    """Yield ``(j0, j1, d2)`` with ``d2[b, j - j0] = ||x_b - y_j||^2`` for consecutive chunks of ``y``.

    ``x`` is ``[B, d]``, ``y`` is ``[n, d]`` (same dtype and device, used as given: centre them first
    for float32 accuracy); ``y_sqnorm`` (``[n]``) may be passed to avoid recomputing it. ``temporaries``
    is how many ``[B, c]`` blocks the caller keeps alive per chunk (the budget covers them all; the
    caller drops its references before asking for the next chunk, so blocks of consecutive chunks
    never coexist). Distances are clamped at 0 (rounding can make the expanded form slightly negative).
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
