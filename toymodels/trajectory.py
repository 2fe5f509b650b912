"""Exact probability-flow trajectories of the empirical denoiser that stop touching every training
point once the posterior has collapsed.

Every Euler/Heun update is an affine combination of the state and denoiser outputs whose
coefficients sum to one, ``x_new = a x + sum_i b_i D_i``, so in coordinates centred on the training
mean ``c`` (``u = x - c``, ``v_j = y_j - c``) the dot products ``s_j = u . v_j`` that make the logits
``l_j = (2 s_j - ||v_j||^2) / (2 sigma^2)`` (up to a per-query constant) follow the same
combination: ``s_j(u_new) = a s_j(u) + sum_i b_i (D_i - c) . v_j``. A denoiser output is formed from
the kept points only, ``D~ = sum_{k in K} w_k y_k / sum_{k in K} w_k``, ``K`` = the points whose weight is at
least ``tol`` times the largest, so ``(D~ - c) . v_j = sum_{k in K} w~_k G[k, j]`` needs only the rows
of the Gram matrix ``G = V V^T`` of kept points (shared by all queries and cached for the whole
trajectory). A call is a *full pass* (one GEMM over all n points) when these products are not known
or when computing them would cost more than the pass.

What is certified, per call: the logits of every training point are exact (float64 arithmetic on
exact inputs: the last full pass's GEMM products in the model's dtype, and float64 Gram rows); the
weight dropped from ``D~`` is below ``n tol`` of the total, so ``|D~ - D| <= 2 n tol R`` (R: the
largest ``|v_j|``), reported per call as ``dropped``. Trajectories are not certified beyond that:
near a tie between training points the flow amplifies any difference, rounding included.
"""
from __future__ import annotations

import torch

from memgen.checks import as_batch, as_tensor, positive
from memgen.pairwise import centred_chunks, chunk_length

from .empirical import EmpiricalDenoiser


class _Gram:
    """Cached rows ``G[k, :] = v_k . v`` (float64) of the centred training points."""

    def __init__(self, model: EmpiricalDenoiser):
        self.model, self.rows, self.pos = model, None, {}

    def new(self, idx: torch.Tensor) -> list[int]:
        return [int(k) for k in idx.tolist() if int(k) not in self.pos]

    def add(self, new: list[int]):
        if not new:
            return
        m = self.model
        vk = _centred_rows(m, torch.tensor(new)).double()
        block = torch.cat([vk @ v.double().T for _, _, v in _chunks(m, vk.shape[0])], 1)
        self.rows = block if self.rows is None else torch.cat([self.rows, block])
        for k in new:
            self.pos[k] = len(self.pos)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        return self.rows[torch.tensor([self.pos[int(k)] for k in idx.tolist()], dtype=torch.long)]


def _chunks(model: EmpiricalDenoiser, batch: int):
    c = chunk_length(batch, model.n, 8, model.budget, 2, row_bytes=model.center.shape[0] * 8)
    return centred_chunks(model.store, model.center.double(), c, model.dtype)


def _centred_rows(model: EmpiricalDenoiser, idx: torch.Tensor) -> torch.Tensor:
    y = model.store
    rows = y[idx] if isinstance(y, torch.Tensor) else torch.from_numpy(y[idx.numpy()])
    return rows.double() - model.center.double()


def _full_pass(model: EmpiricalDenoiser, u: torch.Tensor) -> torch.Tensor:
    """``s = u . v_j`` ``[B, n]`` by one GEMM pass in the model's dtype, stored in float64."""
    uq = u.to(model.dtype)
    return torch.cat([(uq @ v.T).double() for _, _, v in _chunks(model, u.shape[0])], 1)


def sample_reusing(model: EmpiricalDenoiser, noise, sigmas, *, tol: float = 1e-12, record: list | None = None):
    """Heun sampling of the probability-flow ODE (as :func:`memgen.samplers.sample_heun`: a plain Euler
    step onto sigma = 0) with ``D*`` computed as in the module doc. Returns the samples (float64).

    ``tol``: relative weight below which a point is dropped from a denoiser output. ``record``: a list
    that receives one dict per denoiser call: ``step``, ``sigma``, ``full`` (whether it was a full
    pass), ``kept`` (most kept points of a query), ``union`` (kept points over all queries) and
    ``dropped`` (largest dropped weight fraction). Memory: three ``[B, n]`` float64 matrices and the
    cached Gram rows ``[|union|, n]``.
    """
    if not isinstance(model, EmpiricalDenoiser) or type(model).forward is not EmpiricalDenoiser.forward:
        raise TypeError(f"model: expected a toymodels.EmpiricalDenoiser, got {type(model).__name__}")
    tol = positive(tol, "tol")
    x = as_batch(noise, "noise", event_shape=model.event_shape, dtype=torch.float64)
    sig = [float(s) for s in as_tensor(sigmas, "sigmas", dtype=torch.float64).reshape(-1)]
    if len(sig) < 2 or any(a <= b for a, b in zip(sig, sig[1:])) or sig[-1] < 0:
        raise ValueError("sigmas: need at least two strictly decreasing, non-negative noise levels")
    B = x.shape[0]
    d = model.center.shape[0]
    vsq = model.sqnorm.double()
    center = model.center.double()
    gram = _Gram(model)
    u = x.reshape(B, -1) * sig[0] - center

    def call(u, s, sigma, step):
        """``(D~ - c, s(u), P = (D~ - c) . v or None)``; ``s`` is None when it needs a full pass."""
        full = s is None
        if full:
            s = _full_pass(model, u)
        logits = (2 * s - vsq) / (2 * sigma ** 2)
        w = torch.softmax(logits, 1)
        keep = w >= tol * w.amax(1, keepdim=True)
        union = keep.any(0).nonzero().reshape(-1)
        wk = torch.where(keep[:, union], w[:, union], torch.zeros((), dtype=w.dtype))
        dropped = 1 - wk.sum(1)
        wk = wk / wk.sum(1, keepdim=True)
        den = wk @ _centred_rows(model, union)
        new = gram.new(union)
        P = None
        nnz = int(keep.sum())
        # new Gram rows cost at most two passes (repaid by their reuse at later calls); products far cheaper
        if len(new) <= 2 * B and 4 * nnz <= B * d:
            gram.add(new)
            P = torch.sparse.mm(wk.to_sparse(), gram.take(union))
        if record is not None:
            record.append({"step": step, "sigma": sigma, "full": full, "kept": int(keep.sum(1).max()),
                           "union": len(union), "dropped": float(dropped.max())})
        return den, s, P

    s = None
    for i in range(len(sig) - 1):
        h = sig[i + 1] - sig[i]
        den, s, P = call(u, s, sig[i], i)
        a = h / sig[i]                                  # x' = x + (x - D) h / sigma
        u1 = u + (u - den) * a
        s1 = None if P is None else s + (s - P) * a
        if sig[i + 1] > 0:
            den1, s1, P1 = call(u1, s1, sig[i + 1], i)
            b = h / sig[i + 1]
            u = u + 0.5 * ((u - den) * a + (u1 - den1) * b)
            s = None if P is None or P1 is None else s + 0.5 * ((s - P) * a + (s1 - P1) * b)
        else:
            u, s = u1, s1
    return (u + center).reshape(x.shape)
