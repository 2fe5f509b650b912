"""Exact probability-flow trajectories of the empirical denoiser that stop touching every training
point once a query's posterior has collapsed.

Every Euler/Heun update is an affine combination of the state and denoiser outputs whose
coefficients sum to one, ``x_new = a x + sum_i b_i D_i``, so in coordinates centred on the training
mean ``c`` (``u = x - c``, ``v_j = y_j - c``) the dot products ``s_j = u . v_j`` that make the logits
``l_j = (2 s_j - ||v_j||^2) / (2 sigma^2)`` (up to a per-query constant) follow the same
combination: ``s_j(u_new) = a s_j(u) + sum_i b_i (D_i - c) . v_j``. Let ``K`` be a query's kept points,
those with weight at least ``tol`` times the largest. Where they are few, its output is taken from them
alone, ``D~ = sum_{k in K} w_k y_k / sum_{k in K} w_k`` (gathered in float64 from the rows, read in
place), and where ``|K| <= d / 64`` its next products follow without a GEMM:
``(D~ - c) . v_j = sum_{k in K} w~_k G[k, j]`` needs only the rows of the Gram matrix ``G = V V^T`` of
kept points (shared by all queries and cached for the whole trajectory), so its next logits cost two
passes over its ``n`` products instead of a GEMM over ``n x d``. Each query is decided alone, at each
call, by the cheapest of three ways that give its output:

* *carried*: its products follow from the last call's (above); no pass over the training set;
* *products pass*: one GEMM over all ``n`` points for its products (the plain call's first GEMM), then
  its kept points and ``D~``; taken where the last call foresaw at most ``n / (2 GATHER_COST)`` kept
  points at this sigma (the kept points at the new sigma with the old products), and followed by a
  full pass where that proves wrong;
* *full pass*: the plain denoiser's own streamed call (:func:`toymodels.empirical._torch.streaming_state`,
  on CPU the fused fold of :mod:`toymodels.empirical._fused_fold`), which also keeps the products of each block;
  its output, the usual weighted sum over all ``n`` points (nothing dropped), is the query's output
  while its posterior is spread over more than ``n / (2 GATHER_COST)`` points.

A collapsed query gets the Gram rows it lacks only when its share of their cost is repaid by the passes
it saves within the next ``PAYBACK_CALLS`` calls; until then it takes products passes.

What is certified, per call and query: every logit is computed, none is skipped: from the products of
the query's last pass and the Gram rows, both the model's GEMM in its dtype as in the plain call, combined
in float64 with float64 squared norms; the weight dropped from ``D~`` is below ``(n - |K|) tol`` of the
total, so ``|D~ - D| <= 2 n tol R`` (R: the largest ``|v_j|``); the record reports that bound per call as
``dropped``. A carried product adds the rounding of the Gram rows it is combined from, the order of the
plain call's own rounding for each call it is carried (a float64 model: float64 rounding). Trajectories
are not certified beyond that: near a tie between training points the flow amplifies any difference,
rounding included, so two correct float32 runs (or a float32 and a float64 run) can end a few queries on
different training points.

``model`` is always an :class:`~toymodels.empirical.EmpiricalDenoiser` (its ``store``, ``center``, ``radius``,
``dtype``, ``budget``); the denoiser calls :func:`sample_reusing` from its method of that name, which checks
the model, so this module reads the denoiser's fields without importing it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_batch, as_grid, positive
from memgen.pairwise import (centred_sq_norms, host_rows, keep_products, point_chunks, product_shift,
                             uses_raw_rows)

from ._torch import centred_queries, finish, streaming_state

PAYBACK_CALLS = 2
"""A collapsed query is carried when its share of the new Gram rows it needs (each row's cost split among
the queries that need it; a Gram row costs what a query's products pass does, one GEMM row) is repaid by
the passes it saves within this many calls. Not over all the calls left: a collapsing posterior keeps
fewer points at each call, so waiting a call or two usually needs far fewer rows (measured on the
benchmark's Gaussian set: 2,593 new rows for 745 queries at the first call with collapsed queries, 995 rows
for all 1,000 two calls later)."""

GATHER_COST = 40
"""Cost of one gathered row of the output ``sum_k w_k y_k`` (read in place, accumulated in float64) in rows
of a GEMM: measured 43 on the benchmark's shapes (1,000 queries x 250 scattered rows of d = 3072 in 0.18 s,
against 0.84 s for the ``[1000, 3072] x [3072, 50000]`` float32 GEMM on the same two cores)."""

SPREAD_MARGIN = 1.0
"""A query whose posterior entropy after a full pass exceeds ``log(gather_limit) + SPREAD_MARGIN`` nats is
not searched for kept points (its weight cannot sit on that few). This decides work, never the result:
such a query takes the full pass's output, which drops nothing."""


def sparse_limit(d: int) -> int:
    """Most kept points of a query whose logits are carried: the two passes over its ``n`` products
    plus ``|K|`` Gram rows read per call stay below the ``2 d`` flops per point of a full pass."""
    return max(1, d // 64)


def gather_limit(n: int) -> int:
    """Most kept points of a query whose output is gathered from them after a products pass: the
    gather then costs at most half of the weighted-sum GEMM over all ``n`` points that it replaces."""
    return max(1, n // (2 * GATHER_COST))


def _raw(model) -> bool:
    """Whether the GEMMs of a pass read the rows in place (:func:`memgen.pairwise.uses_raw_rows`): then
    ``u . v_j = u . y_j - u . c`` and ``sum_j w_j v_j = sum_j w_j y_j - (sum_j w_j) c``, the shifts in float64."""
    return uses_raw_rows(model.store, model.dtype, model.center, model.radius)


def _centre(model) -> torch.Tensor:
    return model.center.double().cpu()


def _rows_at(model, idx: np.ndarray) -> torch.Tensor:
    """The training rows ``y[idx]`` (any index shape), in the store's dtype, where the store is."""
    y = model.store
    if isinstance(y, torch.Tensor):
        return y[torch.from_numpy(idx).to(y.device)]
    return torch.from_numpy(np.asarray(y[idx.reshape(-1)])).reshape(*idx.shape, -1)


def _products(model, x: torch.Tensor, out: torch.Tensor):
    """``out[b, j] = (x_b - c) . v_j`` for every training point: the model's GEMM in its dtype on the
    state as the plain call sees it (rows read in place where the plain call reads them so), kept in
    float64 (:func:`memgen.pairwise.keep_products`). ``x`` [K, d] float64 CPU, ``out`` [K, n] float64 CPU;
    one ``[K, c]`` block alive at a time, within the model's budget."""
    raw, d = _raw(model), x.shape[1]
    itemsize = torch.finfo(model.dtype).bits // 8
    per = max(1, model.budget // (4 * d * itemsize))          # queries at a time: a quarter of the budget
    for i0 in range(0, x.shape[0], per):
        u = x[i0:i0 + per].to(model.center.device, model.dtype) - model.center.to(model.dtype)
        shift = product_shift(u, model.center, raw)
        _, chunks = point_chunks(u, model.store, model.center, model.sqnorm, torch.zeros(u.shape[0]),
                                 budget=model.budget - u.numel() * itemsize, temporaries=1, raw=raw)
        buf = None
        for j0, j1, v, _ in chunks:
            if buf is None:
                buf = torch.empty(u.shape[0] * (j1 - j0), dtype=u.dtype, device=u.device)
            g = torch.mm(u, v.T, out=buf[:u.shape[0] * (j1 - j0)].view(u.shape[0], j1 - j0))
            keep_products(out[i0:i0 + per], j0, j1, g, shift)


def _kept_mean(model, rows: np.ndarray, idx: np.ndarray, w: np.ndarray, count: np.ndarray):
    """``D~ - c = sum_{k < count[r]} w[r, k] y[idx[r, k]] - c`` [len(rows), d] (float64 CPU) for the queries
    ``rows``, whose weights ``w`` sum to one. A float32/float64 store on the CPU is read in place
    (:func:`toymodels.empirical._reusing_loops.gather_mean`); elsewhere the kept rows of a few queries at a time
    are gathered within the model's budget."""
    from ._reusing_loops import gather_mean

    d = model.center.shape[0]
    y = model.store
    host = host_rows(y)
    if host is not None and host.dtype in (np.float32, np.float64):
        out = np.empty((rows.size, d))
        gather_mean(host, rows, idx, w, count, out)
        return torch.from_numpy(out) - _centre(model)
    k = int(count[rows].max())
    per = max(1, model.budget // (k * d * 8))
    out = torch.empty(rows.size, d, dtype=torch.float64)
    for i0 in range(0, rows.size, per):
        r = rows[i0:i0 + per]
        kept = _rows_at(model, idx[r, :k]).double()                                   # [b, k, d]
        out[i0:i0 + per] = torch.bmm(torch.from_numpy(w[r, :k]).to(kept).unsqueeze(1), kept).squeeze(1).cpu()
    return out - _centre(model)


class _Gram:
    """Cached rows ``G[k, :] = v_k . v`` of the centred training points (:func:`_products` of the point
    itself: the model's GEMM, kept in float64); ``slot[k]`` is the row of point k in ``rows`` (-1 until
    computed)."""

    def __init__(self, model, capacity: int):
        self.model, self.size = model, 0
        self.slot = np.full(model.n, -1, np.int64)
        self.rows = np.empty((min(capacity, model.n), model.n))   # pages are taken as rows are written

    def add(self, new: np.ndarray):
        if new.size == 0:
            return
        if self.size + new.size > self.rows.shape[0]:
            grown = np.empty((max(2 * self.rows.shape[0], self.size + new.size), self.model.n))
            grown[:self.size] = self.rows[:self.size]
            self.rows = grown
        block = torch.from_numpy(self.rows[self.size:self.size + new.size])
        _products(self.model, _rows_at(self.model, new).double().cpu(), block)
        self.slot[new] = np.arange(self.size, self.size + new.size)
        self.size += new.size


def _full_pass(model, u: torch.Tensor, rows: np.ndarray, sigma: float, s: torch.Tensor):
    """One pass of the plain denoiser's kernel (:func:`toymodels.empirical._torch.streaming_state`) for the
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


def sample_reusing(model, noise, sigmas, *, tol: float = 1e-12, record: list | None = None):
    """Heun sampling of the probability-flow ODE (as :func:`memgen.samplers.sample_heun`: a plain Euler
    step onto sigma = 0) with ``D*`` computed as in the module doc. Returns the samples (float64).

    ``tol``: relative weight below which a point is dropped from a query's gathered output. ``record``:
    a list that receives one dict per denoiser call: ``step``, ``sigma``, ``known`` (queries whose products
    the last call carried), ``full`` (queries that took a full pass), ``light`` (queries that took a
    products pass; one that proved spread took a full pass too), ``dense`` (queries whose output is a
    full pass's, over all points), ``carried`` (queries whose products the next call reuses), ``kept``
    (most kept points of a query; ``n`` when a query's full pass showed it spread, see
    :data:`SPREAD_MARGIN`) and ``dropped`` (the bound ``(n - |K|) tol / sum_K w`` on the dropped weight
    fraction, largest over the queries). The GEMMs run where the model's points are; the products and
    the bookkeeping stay on the CPU. Memory: two ``[B, n]`` float64 matrices of products, the kept points
    of each query (indices and logits, ``[B, n / 80]`` each), one pass's blocks within the model's
    budget, and the cached Gram rows ``[rows, n]``.
    """
    tol = positive(tol, "tol")
    x = as_batch(noise, "noise", event_shape=model.event_shape, dtype=torch.float64)
    sig = [float(s) for s in as_grid(sigmas)]
    from ._reusing_loops import combine, kept_points

    B = x.shape[0]
    n, d = model.n, model.center.shape[0]
    limit, reach = sparse_limit(d), gather_limit(n)
    vsq = centred_sq_norms(model.store, model.center).cpu().numpy()
    gram = _Gram(model, capacity=B)                 # about a row per collapsed query
    s, s1 = torch.empty(B, n, dtype=torch.float64), torch.empty(B, n, dtype=torch.float64)   # rows written before read
    u = x.reshape(B, -1).cpu() * sig[0] - _centre(model)
    calls = 2 * (len(sig) - 1) - (sig[-1] == 0)

    def call(u, s, known, predicted, sigma, sigma_next, step, left):
        """``(D - c [B, d], carried [B] bool, Gram slots [B, limit], weights [B, limit], ahead [B])``. A query
        whose products are not ``known`` takes a pass: products only where ``predicted`` (the kept points
        the last call foresaw at this sigma) is at most ``reach``, else (or when that proves wrong) a full
        pass. ``ahead``: the kept points foreseen at ``sigma_next``, were the products unchanged."""
        idx, rel = np.zeros((B, reach), np.int64), np.zeros((B, reach))
        top, count, ahead = np.zeros(B), np.full(B, n), np.full(B, n)
        cut, ahead_cut = 2 * sigma ** 2 * math.log(tol), 2 * sigma_next ** 2 * math.log(tol)

        def search(rows):
            kept_points(s.numpy(), rows, vsq, cut, ahead_cut, idx, rel, top, count, ahead)

        search(np.flatnonzero(known))
        light = np.flatnonzero(~known & (predicted <= reach))
        if light.size:
            r = torch.from_numpy(light)
            dst = s if light.size == B else torch.empty(light.size, n, dtype=torch.float64)
            _products(model, u[r] + _centre(model), dst)
            if light.size < B:
                s[r] = dst
            search(light)
        heavy = np.flatnonzero(count > reach)                # no products yet, spread, or foreseen wrongly
        den = torch.empty(B, d, dtype=torch.float64)
        if heavy.size:
            den[torch.from_numpy(heavy)], entropy = _full_pass(model, u, heavy, sigma, s)
            # weight on at most `reach` points bounds the entropy near log(reach): a query above it by a
            # margin that covers the pass's rounding is spread, and its output is the pass's (exact)
            search(heavy[entropy <= math.log(reach) + SPREAD_MARGIN])
        few = count <= reach
        valid = (np.arange(reach) < count[:, None]) & few[:, None]
        w = np.where(valid, np.exp(rel / (2 * sigma ** 2)), 0.0)
        total = np.maximum(w.sum(1), 1.0)                    # the largest weight is exp(0) = 1
        dropped = np.where(few, (n - count) * tol / total, 0.0)
        w /= total[:, None]
        gathered = np.flatnonzero(few)                       # a query's output: its kept points alone
        if gathered.size:
            den[torch.from_numpy(gathered)] = _kept_mean(model, gathered, idx, w, count)
        idx, w, valid = idx[:, :limit], w[:, :limit], valid[:, :limit] & (count <= limit)[:, None]
        carried = np.zeros(B, bool)
        if left and valid.any():
            # each new row's cost is shared by the queries that need it; a query is carried when its share
            # is repaid by the passes it saves within PAYBACK_CALLS calls
            needing = (gram.slot[idx] < 0) & valid
            _, inverse, users = np.unique(idx[needing], return_inverse=True, return_counts=True)
            share = np.zeros(B)
            np.add.at(share, np.nonzero(needing)[0], 1.0 / users[inverse.reshape(-1)])
            worth = (count <= limit) & (share <= min(left, PAYBACK_CALLS))
            gram.add(np.unique(idx[needing & worth[:, None]]))
            carried = (count <= limit) & ~((gram.slot[idx] < 0) & valid).any(1)
        slots = np.where(valid, gram.slot[idx], 0).clip(min=0)
        if record is not None:
            record.append({"step": step, "sigma": sigma, "known": int(known.sum()), "full": int(heavy.size),
                           "light": int(light.size), "dense": int(B - gathered.size), "carried": int(carried.sum()),
                           "kept": int(count.max()), "dropped": float(dropped.max())})
        return den, carried, slots, np.where(valid, w, 0.0), ahead

    known, predicted = np.zeros(B, bool), np.full(B, n)
    done = 0
    for i in range(len(sig) - 1):
        h = sig[i + 1] - sig[i]
        a = h / sig[i]                                  # x' = x + (x - D) h / sigma
        done += 1
        den, c0, g0, w0, predicted = call(u, s, known, predicted, sig[i], sig[i + 1], i, calls - done)
        u1 = u + (u - den) * a
        r0 = np.flatnonzero(c0)
        combine(s1.numpy(), s.numpy(), 1 + a, s.numpy(), 0.0, r0, g0[r0], a * w0[r0], gram.rows)
        if sig[i + 1] > 0:
            done += 1
            den1, c1, g1, w1, predicted = call(u1, s1, c0, predicted, sig[i + 1], sig[i + 1], i, calls - done)
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
