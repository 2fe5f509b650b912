"""Streaming (flash-attention style) posterior over training points, in torch (any d, CPU or GPU).

For queries ``x_b`` at noise ``sigma_b`` and training points ``y_j``, with logits
``l_bj = -||x_b - y_j||^2 / (2 sigma_b^2)`` and weights ``w_bj = exp(l_bj - logZ_b)``:

* mean     ``D_b = sum_j w_bj y_j``
* entropy  ``H_b = -sum_j w_bj log w_bj = log s - t / s``
* logZ     ``logZ_b = log sum_j exp(l_bj) = m + log s``

where, over chunks of training points, ``m`` is the running maximum logit, ``s = sum exp(l - m)``
and ``t = sum exp(l - m) (l - m)``. When the maximum rises from m to m', the accumulators are
rescaled exactly: ``s' = e^(m-m') s``, ``t' = e^(m-m') (t + (m - m') s)``, ``acc' = e^(m-m') acc``.
Nothing is ever exponentiated without subtracting the running maximum, so no weight underflows to a
0/0 even as sigma -> 0 (the mean then tends to the nearest training point).
"""
from __future__ import annotations

import torch

from memgen.pairwise import DEFAULT_BUDGET, sq_distance_chunks


def streaming_posterior(x: torch.Tensor, y: torch.Tensor, y_sqnorm: torch.Tensor, sigma: torch.Tensor, *,
                        budget: int = DEFAULT_BUDGET, topk: int | None = None, all_weights: bool = False):
    """One pass over ``y`` (``[n, d]``) for queries ``x`` (``[B, d]``) at ``sigma`` (``[B]``).

    ``budget`` bounds what the call allocates beyond its inputs: three query-sized ``[B, d]`` buffers
    (the caller's centred copy, the accumulator, the result) and the ``[B, c]`` blocks of one chunk.

    Returns a dict with ``mean`` [B, d], ``entropy`` [B], ``log_normalizer`` [B] and, on request,
    ``topk_logits``/``topk_indices`` [B, k] (largest first) or ``logits`` [B, n] (``all_weights``).
    """
    B, d = x.shape
    reserved = 3 * B * d * x.element_size()          # centred queries, accumulator, result
    if budget <= reserved + 2 * B * x.element_size():
        raise ValueError(f"budget: {budget} bytes cannot hold the {B} x {d} query-sized buffers ({reserved} bytes)"
                         " plus one chunk; pass a larger budget or fewer queries at a time")
    coef = (-0.5 / sigma ** 2).unsqueeze(1)
    # Without autograd the [B, c] blocks are updated in place (2 alive per chunk); with it, out of place (5).
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad or sigma.requires_grad)
    m = s = t = acc = None
    top_l = top_i = None
    kept = []
    for j0, j1, d2 in sq_distance_chunks(x, y, y_sqnorm, budget=budget - reserved,
                                             temporaries=5 if grad else 2):
        l = d2 * coef if grad else d2.mul_(coef)
        cm = l.amax(1)
        m_new = cm if m is None else torch.maximum(m, cm)
        mcol = m_new.unsqueeze(1)
        shifted = l - mcol if grad else l.sub_(mcol)
        e = shifted.exp()
        chunk_s = e.sum(1)
        chunk_t = torch.bmm(e.unsqueeze(1), shifted.unsqueeze(2)).reshape(-1)    # sum_j e_j (l_j - m)
        if m is None:
            s, t, acc = chunk_s, chunk_t, e @ y[j0:j1]
        else:
            alpha = torch.exp(m - m_new)
            t = alpha * (t + (m - m_new) * s) + chunk_t
            s = alpha * s + chunk_s
            acc = torch.addmm(acc * alpha.unsqueeze(1), e, y[j0:j1]) if grad else \
                acc.mul_(alpha.unsqueeze(1)).addmm_(e, y[j0:j1])
        m = m_new
        if all_weights or topk is not None:
            logits = shifted + mcol
            if all_weights:
                kept.append(logits)
            if topk is not None:
                idx = torch.arange(j0, j1, device=x.device).expand_as(logits)
                if top_l is not None:
                    logits, idx = torch.cat([top_l, logits], 1), torch.cat([top_i, idx], 1)
                top_l, pos = logits.topk(min(topk, logits.shape[1]), dim=1)
                top_i = idx.gather(1, pos)
            del logits
        del d2, l, shifted, e                        # this chunk's blocks go before the next is allocated
    out = {
        "mean": acc / s.unsqueeze(1) if grad else acc.div_(s.unsqueeze(1)),
        "entropy": (s.log() - t / s).clamp(min=0),
        "log_normalizer": m + s.log(),
    }
    if topk is not None:
        out["topk_logits"], out["topk_indices"] = top_l, top_i
    if all_weights:
        out["logits"] = torch.cat(kept, 1)
    return out
