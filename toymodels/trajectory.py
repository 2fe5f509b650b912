"""Exact probability-flow trajectories of the empirical denoiser that stop touching every training
point once a query's posterior has collapsed.

Every Euler/Heun update is an affine combination of the state and denoiser outputs whose
coefficients sum to one, ``x_new = a x + sum_i b_i D_i``, so in coordinates centred on the training
mean ``c`` (``u = x - c``, ``v_j = y_j - c``) the dot products ``s_j = u . v_j`` that make the logits
``l_j = (2 s_j - ||v_j||^2) / (2 sigma^2)`` (up to a per-query constant) follow the same
combination: ``s_j(u_new) = a s_j(u) + sum_i b_i (D_i - c) . v_j``. A query whose weight sits on
few points, ``K`` = the points with weight at least ``tol`` times the largest, ``|K| <= d / 64``, takes
its output from them alone, ``D~ = sum_{k in K} w_k y_k / sum_{k in K} w_k``, so that
``(D~ - c) . v_j = sum_{k in K} w~_k G[k, j]`` needs only the rows of the Gram matrix ``G = V V^T`` of
kept points (shared by all queries and cached for the whole trajectory); its next logits cost two
passes over its ``n`` products instead of a GEMM over ``n x d``. Each query is decided alone, at
each call: it takes a *full pass* when its products are not known (or its posterior has spread again).
A full pass is the plain denoiser's own streamed call (:func:`toymodels.posterior_torch.streaming_state`,
on CPU the fused fold of :mod:`toymodels.posterior_block`) that also keeps the products of each block
before folding it; its output, the usual weighted sum over all n points (nothing dropped), is the
query's output while its posterior is spread over more than ``d / 64`` points. A collapsed query gets
the Gram rows it lacks (float64, one per point) only when its share of their cost is repaid by the full
passes it saves within the next ``PAYBACK_CALLS`` calls; until then it takes full passes.

What is certified, per call and query: every logit is computed, none is skipped (float64 arithmetic
on exact inputs: the products of the query's last full pass, which are the model's GEMM in its dtype,
then float64 Gram rows and float64 squared norms); the weight dropped from ``D~`` is below
``(n - |K|) tol`` of the total, so ``|D~ - D| <= 2 n tol R`` (R: the largest ``|v_j|``); the record
reports that bound per call as ``dropped``. Trajectories are not certified beyond that: near a tie
between training points the flow amplifies any difference, rounding included, so two correct float32
runs (or a float32 and a float64 run) can end a few queries on different training points.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_batch, as_tensor, positive
from memgen.pairwise import centred_chunks, chunk_length, uses_raw_rows

from .empirical import EmpiricalDenoiser
from .posterior_torch import centred_queries, finish, streaming_state

GRAM_COST = 1.5
"""Cost of one float64 Gram row in full-pass rows: a float64 GEMM runs at about a third of float32's rate
(measured 3.2x slower on the benchmark's shapes), and a full pass does two float32 GEMM rows."""

PAYBACK_CALLS = 2
"""A collapsed query is carried when its share of the new Gram rows it needs (each row's cost split among
the queries that need it) is repaid by the full passes it saves within this many calls. Not over all the
calls left: a collapsing posterior keeps fewer points at each call, so waiting a call or two usually
needs far fewer rows (measured on the benchmark's Gaussian set: 2,593 new rows for 745 queries at the
first call with collapsed queries, 995 rows for all 1,000 two calls later)."""

SPREAD_MARGIN = 1.0
"""A query whose posterior entropy after a full pass exceeds ``log(sparse_limit) + SPREAD_MARGIN`` nats is
not searched for kept points (its weight cannot sit on that few). This decides work, never the result:
such a query takes the full pass's output, which drops nothing."""


def sparse_limit(d: int) -> int:
    """Most kept points of a query whose logits are carried: the two passes over its ``n`` products
    plus ``|K|`` Gram rows read per call stay below the ``2 d`` flops per point of a full pass."""
    return max(1, d // 64)


def _chunks(model: EmpiricalDenoiser, batch: int, dtype: torch.dtype, raw: bool = False):
    """``(j0, j1, v)``: the training points centred in ``dtype``, chunked within the model's budget; with
    ``raw`` the rows ``y_j`` themselves, read in place (see :func:`_raw`)."""
    d = model.center.shape[0]
    itemsize = torch.finfo(dtype).bits // 8
    c = chunk_length(batch, model.n, itemsize, model.budget, 2, row_bytes=0 if raw else d * itemsize)
    if raw:
        return ((j0, min(j0 + c, model.n), model.store[j0:j0 + c]) for j0 in range(0, model.n, c))
    return centred_chunks(model.store, model.center.double(), c, dtype)


def _raw(model: EmpiricalDenoiser) -> bool:
    """Whether the GEMMs of a pass read the rows in place (:func:`memgen.pairwise.uses_raw_rows`): then
    ``u . v_j = u . y_j - u . c`` and ``sum_j w_j v_j = sum_j w_j y_j - (sum_j w_j) c``, the shifts in float64."""
    return uses_raw_rows(model.store, model.dtype, model.center, model.radius)


def _centre(model: EmpiricalDenoiser) -> torch.Tensor:
    return model.center.double().cpu()


def _centred_rows(model: EmpiricalDenoiser, idx: np.ndarray) -> torch.Tensor:
    """``y_k - c`` for the points ``idx``, float64 on the CPU."""
    y = model.store
    if isinstance(y, torch.Tensor):
        rows = y[torch.from_numpy(idx).to(y.device)]
    else:
        rows = torch.from_numpy(np.asarray(y[idx]))
    return rows.double().cpu() - _centre(model)


class _Gram:
    """Cached rows ``G[k, :] = v_k . v`` (float64) of the centred training points; ``slot[k]`` is the
    row of point k in ``rows`` (-1 until computed)."""

    def __init__(self, model: EmpiricalDenoiser):
        self.model, self.size = model, 0
        self.slot = np.full(model.n, -1, np.int64)
        self.rows = np.zeros((0, model.n))

    def add(self, new: np.ndarray):
        if new.size == 0:
            return
        if self.size + new.size > self.rows.shape[0]:
            grown = np.empty((max(2 * self.rows.shape[0], self.size + new.size), self.model.n))
            grown[:self.size] = self.rows[:self.size]
            self.rows = grown
        vk = _centred_rows(self.model, new).to(self.model.center.device)
        block = torch.from_numpy(self.rows[self.size:self.size + new.size])
        for j0, j1, v in _chunks(self.model, new.size, torch.float64):
            block[:, j0:j1] = vk @ v.T
        self.slot[new] = np.arange(self.size, self.size + new.size)
        self.size += new.size


def _full_pass(model: EmpiricalDenoiser, u: torch.Tensor, rows: np.ndarray, sigma: float, s: torch.Tensor):
    """One pass of the plain denoiser's kernel (:func:`toymodels.posterior_torch.streaming_state`) for the
    queries ``rows``: their products ``s[rows] = u . v_j`` (the GEMM in the model's dtype, stored in
    float64) and, from the same blocks, their ``D - c`` [rows, d] (float64) and posterior entropy [rows]."""
    r = torch.from_numpy(rows)
    every = rows.size == s.shape[0]
    dst = s if every else torch.empty(rows.size, s.shape[1], dtype=torch.float64)
    x = (u[r] + _centre(model)).to(model.center.device, model.dtype)       # the state as the plain call sees it
    uq, lower, offset, reserved = centred_queries(x, model.center, model.radius, model.budget)
    sig = torch.full((rows.size,), sigma, dtype=model.dtype, device=x.device)
    state, _ = streaming_state(uq, model.store, model.center, model.sqnorm, offset, sig,
                               budget=model.budget, reserved=reserved, raw=_raw(model), products=dst)
    if not every:
        s[r] = dst
    out = finish(state, lower, sig)                      # the mean of a centred state is D - c
    return out["mean"].double().cpu(), out["entropy"].double().cpu().numpy()


def sample_reusing(model: EmpiricalDenoiser, noise, sigmas, *, tol: float = 1e-12, record: list | None = None):
    """Heun sampling of the probability-flow ODE (as :func:`memgen.samplers.sample_heun`: a plain Euler
    step onto sigma = 0) with ``D*`` computed as in the module doc. Returns the samples (float64).

    ``tol``: relative weight below which a point is dropped from a collapsed query's output. ``record``:
    a list that receives one dict per denoiser call: ``step``, ``sigma``, ``full`` (queries that took a
    full pass), ``dense`` (those of them whose output is the full pass's, over all points), ``carried`` (queries whose
    products the next call reuses), ``kept`` (most kept points of a query; ``n`` when a query's full pass
    showed it spread, see :data:`SPREAD_MARGIN`) and ``dropped`` (the bound
    ``(n - |K|) tol / sum_K w`` on the dropped weight fraction, largest over the queries). The GEMMs run
    where the model's points are; the products and the bookkeeping stay on the CPU. Memory: two
    ``[B, n]`` float64 matrices of products, the full pass's blocks within the model's budget, and the
    cached Gram rows ``[rows, n]``.
    """
    if not isinstance(model, EmpiricalDenoiser) or type(model).forward is not EmpiricalDenoiser.forward:
        raise TypeError(f"model: expected a toymodels.EmpiricalDenoiser, got {type(model).__name__}")
    tol = positive(tol, "tol")
    x = as_batch(noise, "noise", event_shape=model.event_shape, dtype=torch.float64)
    sig = [float(s) for s in as_tensor(sigmas, "sigmas", dtype=torch.float64).reshape(-1)]
    if len(sig) < 2 or any(a <= b for a, b in zip(sig, sig[1:])) or sig[-1] < 0:
        raise ValueError("sigmas: need at least two strictly decreasing, non-negative noise levels")
    from .trajectory_kernels import combine, kept_points

    B = x.shape[0]
    n, d = model.n, model.center.shape[0]
    limit = sparse_limit(d)
    vsq = torch.cat([v.pow(2).sum(1) for _, _, v in _chunks(model, 1, torch.float64)]).cpu()
    gram = _Gram(model)
    s, s1 = torch.empty(B, n, dtype=torch.float64), torch.empty(B, n, dtype=torch.float64)   # rows written before read
    u = x.reshape(B, -1).cpu() * sig[0] - _centre(model)
    calls = 2 * (len(sig) - 1) - (sig[-1] == 0)

    def call(u, s, known, sigma, step, left):
        """``(D - c [B, d], carried [B] bool, Gram slots [B, limit], weights [B, limit])``. A query whose
        products are not ``known``, or whose posterior has spread again over more than ``limit`` points,
        takes a full pass first, which also gives its output."""
        idx, rel, top, count = np.zeros((B, limit), np.int64), np.zeros((B, limit)), np.zeros(B), np.zeros(B, np.int64)
        cut = 2 * sigma ** 2 * math.log(tol)
        kept_points(s.numpy(), np.flatnonzero(known), vsq.numpy(), cut, idx, rel, top, count)
        todo = np.flatnonzero(~known | (count > limit))
        den = torch.zeros(B, d, dtype=torch.float64)
        if todo.size:
            den[torch.from_numpy(todo)], entropy = _full_pass(model, u, todo, sigma, s)
            # weight on at most `limit` points bounds the entropy near log(limit): a query above it by a
            # margin that covers the pass's rounding is spread, and its output is the pass's (exact)
            spread = entropy > math.log(limit) + SPREAD_MARGIN
            count[todo[spread]] = n
            kept_points(s.numpy(), todo[~spread], vsq.numpy(), cut, idx, rel, top, count)
        sparse = count <= limit
        valid = np.arange(limit) < count[:, None]
        w = np.where(valid & sparse[:, None], np.exp(rel / (2 * sigma ** 2)), 0.0)
        total = np.maximum(w.sum(1), 1.0)                    # the largest weight is exp(0) = 1
        dropped = np.where(sparse, (n - count) * tol / total, 0.0)
        w /= total[:, None]
        den[torch.from_numpy(sparse)] = 0.0                  # a collapsed query's output: its kept points alone
        dense = np.flatnonzero(~sparse)
        kept = idx[valid & sparse[:, None]]
        points, inverse = np.unique(kept, return_inverse=True)
        if points.size:
            rows, cols = np.nonzero(valid & sparse[:, None])
            coo = torch.sparse_coo_tensor(np.stack([rows, inverse.reshape(-1)]), w[rows, cols], (B, points.size),
                                          check_invariants=True)
            den += torch.sparse.mm(coo, _centred_rows(model, points))
        carried = np.zeros(B, bool)
        if left and points.size:
            # each new row's cost is shared by the queries that need it; a query is carried when its share
            # is repaid by the full passes it saves within PAYBACK_CALLS calls
            needing = (gram.slot[idx] < 0) & valid & sparse[:, None]
            _, inverse, users = np.unique(idx[needing], return_inverse=True, return_counts=True)
            share = np.zeros(B)
            np.add.at(share, np.nonzero(needing)[0], GRAM_COST / users[inverse.reshape(-1)])
            worth = sparse & (share <= min(left, PAYBACK_CALLS))
            gram.add(np.unique(idx[needing & worth[:, None]]))
            carried = sparse & ~((gram.slot[idx] < 0) & valid).any(1)
        slots = np.where(valid, gram.slot[idx], 0).clip(min=0)
        if record is not None:
            record.append({"step": step, "sigma": sigma, "full": int(todo.size), "dense": int(dense.size),
                           "carried": int(carried.sum()), "kept": int(count.max()),
                           "dropped": float(dropped.max())})
        return den, carried, slots, np.where(valid, w, 0.0)

    known = np.zeros(B, bool)
    done = 0
    for i in range(len(sig) - 1):
        h = sig[i + 1] - sig[i]
        a = h / sig[i]                                  # x' = x + (x - D) h / sigma
        done += 1
        den, c0, g0, w0 = call(u, s, known, sig[i], i, calls - done)
        u1 = u + (u - den) * a
        r0 = np.flatnonzero(c0)
        combine(s1.numpy(), s.numpy(), 1 + a, s.numpy(), 0.0, r0, g0[r0], a * w0[r0], gram.rows)
        if sig[i + 1] > 0:
            done += 1
            den1, c1, g1, w1 = call(u1, s1, c0, sig[i + 1], i, calls - done)
            b = h / sig[i + 1]
            u = u + 0.5 * ((u - den) * a + (u1 - den1) * b)
            known = c0 & c1                            # s(u_new) = s + (a (s - P) + b (s1 - P1)) / 2
            r = np.flatnonzero(known)
            combine(s.numpy(), s.numpy(), 1 + 0.5 * a, s1.numpy(), 0.5 * b, r,
                    np.concatenate([g0[r], g1[r]], 1), np.concatenate([0.5 * a * w0[r], 0.5 * b * w1[r]], 1),
                    gram.rows)
        else:
            u = u1
    return (u + _centre(model)).reshape(x.shape).to(x.device)
