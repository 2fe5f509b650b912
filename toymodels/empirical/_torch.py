"""Streaming (flash-attention style) posterior over training points, in torch (any d, CPU or GPU).

For queries ``x_b`` at noise ``sigma_b`` and training points ``y_j``, with logits
``l_bj = -||x_b - y_j||^2 / (2 sigma_b^2)`` and weights ``w_bj = exp(l_bj - logZ_b)``:

* mean     ``D_b = sum_j w_bj y_j``
* entropy  ``H_b = -sum_j w_bj log w_bj = log s - t / s``
* logZ     ``logZ_b = log sum_j exp(l_bj) = m + log s``

where, over chunks of training points, ``m`` is the running maximum logit, ``s = sum exp(l - m)``
and ``t = sum exp(l - m) (l - m)``. When the maximum rises from m to m', the accumulators are
rescaled exactly: ``s' = e^(m-m') s``, ``t' = e^(m-m') (t + (m - m') s)``, ``acc' = e^(m-m') acc``.
The same rule merges the states of two disjoint parts of the training set (chunks here, shards in
:mod:`toymodels.empirical.sharded`). Nothing is ever exponentiated without subtracting the running maximum, and
weights are formed from logits *relative* to it (``w = exp((l - m) - log s)``), never from the
absolute logits, which at small sigma are so large that their rounding alone would move a weight by a
factor of two.

Far queries: the distances are streamed less a per-query lower bound (:func:`memgen.pairwise.far_shift`),
added back in float64 to the log normalizer only, so a query at ``|x| = 1e20`` in float32 still finds
its posterior (the log normalizer then overflows to ``-inf``, its true value rounded).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from memgen.pairwise import (DEFAULT_BUDGET, far_shift, point_chunks, product_shift, shifted_distance_chunks,
                             squared_norms, uses_raw_rows)
from memgen.smallest import merge_smallest, new_list

from ._fused_fold import fold_block, fused


class State(NamedTuple):
    """Unnormalized posterior over a part of the training set: running maximum logit ``m`` [B],
    ``s = sum exp(l - m)`` [B], ``t = sum exp(l - m)(l - m)`` [B], ``acc = sum exp(l - m) v`` [B, d]."""

    m: torch.Tensor
    s: torch.Tensor
    t: torch.Tensor
    acc: torch.Tensor


def rescaled(m: torch.Tensor, s: torch.Tensor, t: torch.Tensor, m_new: torch.Tensor):
    """``(alpha, alpha s, alpha (t + (m - m_new) s))`` with ``alpha = e^(m - m_new)``: a state moved to a new maximum."""
    alpha = torch.exp(m - m_new)
    return alpha, alpha * s, alpha * (t + (m - m_new) * s)


def merge(a: State, b: State) -> State:
    """The state of the union of two disjoint parts of the training set (exact up to rounding)."""
    m = torch.maximum(a.m, b.m)
    al, sa, ta = rescaled(a.m, a.s, a.t, m)
    bl, sb, tb = rescaled(b.m, b.s, b.t, m)
    return State(m, sa + sb, ta + tb, a.acc * al.unsqueeze(1) + b.acc * bl.unsqueeze(1))


def needs_grad(x: torch.Tensor, sigma: torch.Tensor) -> bool:
    """Whether autograd must flow through ``x`` or ``sigma``: only torch's operations carry it (the numba
    kernels read plain arrays), so such a call takes :func:`_torch_state`."""
    return torch.is_grad_enabled() and (x.requires_grad or sigma.requires_grad)


def overflow_error(dtype) -> ValueError:
    return ValueError(f"x, sigma: the logits -||x - y||^2 / (2 sigma^2) overflow {dtype} (x too far from the"
                      " training points for this sigma); pass smaller inputs or dtype=torch.float64")


def streaming_state(u: torch.Tensor, y, center: torch.Tensor, v_sqnorm: torch.Tensor, offset: torch.Tensor,
                    sigma: torch.Tensor, *, budget: int = DEFAULT_BUDGET, topk: int | None = None,
                    all_weights: bool = False, reserved: int = 0, raw: bool = False,
                    products: torch.Tensor | None = None):
    """One pass over the training points ``y`` (``[n, d]``, tensor or numpy) for centred queries ``u``.

    Streams ``d2 = ||u - v_j||^2 - lower`` (see :func:`memgen.pairwise.point_chunks`;
    ``offset = ||u||^2 - lower``) and returns ``(State, extras)``; ``extras`` holds, on request,
    ``topk`` = (relative logits ``l - m`` [B, k], indices [B, k]) and ``chunks`` = list of
    (relative logits [B, c], the maximum they are relative to [B]) covering all n points.
    ``budget`` bounds the ``[B, c]`` blocks and the chunk buffer, after ``reserved`` bytes. ``raw``: the
    GEMMs read the rows in place (:func:`memgen.pairwise.uses_raw_rows`); ``acc`` is then corrected by
    ``- s c`` so that the state is the same. On CPU, without autograd or extras, each block is folded by
    the fused kernel of :mod:`toymodels.empirical._fused_fold` (two passes over the block instead of seven).
    ``products``, a float64 ``[B, n]`` CPU tensor, receives the products ``u_b . v_j`` of every block
    (:func:`memgen.pairwise.keep_products`; the reusing sampler of
    :mod:`toymodels.empirical._reusing_sampler` carries them).
    """
    grad = needs_grad(u, sigma)
    if not all_weights and not grad and fused(u):
        state, top = _fused_state(u, y, center, v_sqnorm, offset, sigma, budget=budget - reserved, raw=raw,
                                  products=products, topk=topk)
        return state, {"topk": top, "chunks": []}
    return _torch_state(u, y, center, v_sqnorm, offset, sigma, budget=budget, topk=topk, all_weights=all_weights,
                        reserved=reserved, raw=raw, products=products)


def _fused_state(u, y, center, v_sqnorm, offset, sigma, *, budget, raw, products=None, topk=None):
    """``(State, top)``: :func:`streaming_state` with one GEMM per block into a reused buffer, folded by
    :func:`toymodels.empirical._fused_fold.fold_block`; the per-query constant of the distances is added to the
    running maximum at the end, in float64.

    With ``topk = k``, each block's ``x_bj = ||v_j||^2 - 2 u_b.v_j`` (float64, the values the fold
    computes) first goes through :func:`memgen.smallest.merge_smallest`, which keeps the k smallest of each
    query; ``top`` is then their logits relative to the largest, ``coef_b (x_bk - x_b1) <= 0``, and indices
    (largest first), else None."""
    B, d = u.shape
    coef = (-0.5 / sigma.double() ** 2).numpy()
    m, s, t = np.full(B, -np.inf), np.zeros(B), np.zeros(B)
    acc = torch.empty(B, d, dtype=u.dtype)            # the first block's product is written over it
    # one [B, c] block alive: the GEMM's output, overwritten with the weights for the second GEMM
    rest, chunks = point_chunks(u, y, center, v_sqnorm, offset, budget=budget, temporaries=1, raw=raw)
    buf = None
    shift = product_shift(u, center, raw) if products is not None else None
    if topk is not None:
        best_v, best_i = new_list(B, min(topk, y.shape[0]), torch.float64, "cpu")
    for j0, j1, v, q in chunks:
        if buf is None:
            buf = torch.empty(B * (j1 - j0), dtype=u.dtype)
        g = torch.mm(u, v.T, out=buf[:B * (j1 - j0)].view(B, j1 - j0))
        q = q.double()                                # the fold's column norms, once per block
        if topk is not None:                          # before the fold writes the weights over g
            merge_smallest(g, q, -2.0, best_v, best_i, j0)
        alpha, block_s = fold_block(g, q, coef, m, s, t, None if products is None else products[:, j0:j1], shift)
        if j0 == 0:
            torch.mm(g, v, out=acc)
        else:
            acc.mul_(alpha.to(u.dtype).unsqueeze(1)).addmm_(g, v)
        if raw:                                      # sum e (y - c) = sum e y - (sum e) c, no [B, d] temporary
            acc.addr_(block_s.to(u.dtype), center.to(u.dtype), alpha=-1)
    m = (torch.from_numpy(m) + torch.from_numpy(coef) * rest.cpu()).to(u.dtype)
    if not bool(torch.isfinite(m).all()):                # a logit beyond the dtype, as in the torch path
        raise overflow_error(u.dtype)
    top = None if topk is None else \
        ((torch.from_numpy(coef).unsqueeze(1) * (best_v - best_v[:, :1])).to(u.dtype), best_i)
    return State(m, torch.from_numpy(s).to(u.dtype), torch.from_numpy(t).to(u.dtype), acc), top


def _torch_state(u: torch.Tensor, y, center: torch.Tensor, v_sqnorm: torch.Tensor, offset: torch.Tensor,
                    sigma: torch.Tensor, *, budget: int = DEFAULT_BUDGET, topk: int | None = None,
                    all_weights: bool = False, reserved: int = 0, raw: bool = False,
                    products: torch.Tensor | None = None):
    """:func:`streaming_state` by torch operations on each ``[B, c]`` block (any device, autograd, extras)."""
    coef = (-0.5 / sigma ** 2).unsqueeze(1)
    # Without autograd the [B, c] blocks are updated in place (2 alive per chunk); with it, out of place (5).
    grad = needs_grad(u, sigma)
    m = s = t = acc = None
    top = None
    chunks = []
    cshift = center.to(u.dtype).unsqueeze(0) if raw else None
    for j0, j1, v, d2 in shifted_distance_chunks(u, y, center, v_sqnorm, offset, budget=budget - reserved,
                                                 temporaries=5 if grad else 2, raw=raw, products=products):
        l = d2 * coef if grad else d2.mul_(coef)
        cm = l.amax(1)
        m_new = cm if m is None else torch.maximum(m, cm)
        if not bool(torch.isfinite(m_new).all()):
            raise overflow_error(u.dtype)
        mcol = m_new.unsqueeze(1)
        floor = torch.finfo(l.dtype).min            # l is bf16 under autocast
        shifted = (l - mcol).clamp(min=floor) if grad else l.sub_(mcol).clamp_(min=floor)
        e = shifted.exp()
        if not grad and e.device.type == "cpu":      # no subnormal weights into the CPU GEMM (_fused_fold.py)
            e.masked_fill_(e < torch.finfo(e.dtype).tiny, 0.0)
        chunk_s = e.sum(1)
        chunk_t = torch.bmm(e.unsqueeze(1), shifted.unsqueeze(2)).reshape(-1)    # sum_j e_j (l_j - m)
        if m is None:
            s, t, acc = chunk_s, chunk_t, e @ v
        else:
            alpha, s, t = rescaled(m, s, t, m_new)
            s, t = s + chunk_s, t + chunk_t
            acc = torch.addmm(acc * alpha.unsqueeze(1), e, v) if grad else acc.mul_(alpha.unsqueeze(1)).addmm_(e, v)
        if raw:                                      # sum e (y - c) = sum e y - (sum e) c
            acc = acc - chunk_s.unsqueeze(1) * cshift if grad else acc.sub_(chunk_s.unsqueeze(1) * cshift)
        if topk is not None:
            r, i = shifted.topk(min(topk, j1 - j0), dim=1)
            if top is not None:
                r, i = torch.cat([top[0] + (m - m_new).unsqueeze(1), r], 1), torch.cat([top[1], i + j0], 1)
                r, pos = r.topk(min(topk, r.shape[1]), dim=1)
                i = i.gather(1, pos)
            else:
                i = i + j0
            top = (r, i)
        if all_weights:
            chunks.append((shifted, m_new))
        m = m_new
        del d2, l, shifted, e                        # this chunk's blocks go before the next is allocated
    return State(m, s, t, acc), {"topk": top, "chunks": chunks}


def finish(state: State, lower: torch.Tensor, sigma: torch.Tensor, extras: dict | None = None) -> dict:
    """Normalized statistics of a :class:`State`: ``mean`` (centred) [B, d], ``entropy`` [B],
    ``log_normalizer`` [B] (``m + log s - lower / (2 sigma^2)``, the last term in float64), and from
    ``extras`` ``topk_weights``/``topk_indices`` [B, k] (largest first) or ``weights`` [B, n]."""
    m, s, t, acc = state
    log_s = s.log()
    out = {
        "mean": acc / s.unsqueeze(1),
        "entropy": (log_s - t / s).clamp(min=0),
        "log_normalizer": ((m + log_s).double() - lower.double() / (2 * sigma.double() ** 2)).to(m.dtype),
    }
    if extras and extras.get("topk") is not None:
        r, i = extras["topk"]
        out["topk_weights"], out["topk_indices"] = (r - log_s.unsqueeze(1)).exp(), i
    if extras and extras.get("chunks"):
        out["weights"] = torch.cat([(r + (mc - m - log_s).unsqueeze(1)).exp() for r, mc in extras["chunks"]], 1)
    return out


def centred_queries(x: torch.Tensor, center: torch.Tensor, radius: float, budget: int):
    """``(u, lower, offset, reserved)``: the centred queries ``u = x - center``, the far-query shift
    (:func:`memgen.pairwise.far_shift`) and the bytes of the two query-sized buffers (``u`` and the
    accumulator) that the budget must hold besides one chunk."""
    B, d = x.shape
    reserved = 2 * B * d * x.element_size()
    if budget <= reserved + (2 * B + d) * x.element_size():
        raise ValueError(f"budget: {budget} bytes cannot hold the {B} x {d} query-sized buffers ({reserved} bytes)"
                         " plus one chunk; pass a larger budget or fewer queries at a time")
    u = x - center.to(x.dtype)
    u_sq = squared_norms(u, dtype=torch.float64)
    if not bool(torch.isfinite(u_sq).all()):
        raise overflow_error(torch.float64)
    lower, offset = far_shift(u_sq, radius)
    return u, lower, offset, reserved


def streaming_posterior(x: torch.Tensor, y, center: torch.Tensor, v_sqnorm: torch.Tensor, radius: float,
                        sigma: torch.Tensor, *, budget: int = DEFAULT_BUDGET, topk: int | None = None,
                        all_weights: bool = False) -> dict:
    """Posterior statistics of queries ``x`` [B, d] at ``sigma`` [B] over the training points ``y``.

    ``y`` ``[n, d]`` is read chunk by chunk (tensor or numpy, memory-mapped included) and centred on
    ``center`` as it is read; ``v_sqnorm`` [n] are the ``||y_j - center||^2`` and ``radius`` their
    largest square root. ``budget`` bounds what the call allocates beyond its inputs and outputs:
    two query-sized ``[B, d]`` buffers (centred queries, accumulator), the ``[B, c]`` blocks and the
    ``[c, d]`` buffer of one chunk. Returns :func:`finish`'s dict, ``mean`` in original coordinates.
    """
    u, lower, offset, reserved = centred_queries(x, center, radius, budget)
    state, extras = streaming_state(u, y, center, v_sqnorm, offset, sigma, budget=budget, topk=topk,
                                    all_weights=all_weights, reserved=reserved,
                                    raw=uses_raw_rows(y, x.dtype, center, radius))
    out = finish(state, lower, sigma, extras)
    out["mean"] = out["mean"] + center.to(x.dtype)
    return out
