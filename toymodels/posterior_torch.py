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

    Returns a dict with ``mean`` [B, d], ``entropy`` [B], ``log_normalizer`` [B] and, on request,
    ``topk_logits``/``topk_indices`` [B, k] (largest first) or ``logits`` [B, n] (``all_weights``).
    """
    coef = (-0.5 / sigma ** 2).unsqueeze(1)
    m = s = t = acc = None
    top_l = top_i = None
    kept = []
    for j0, j1, d2 in sq_distance_chunks(x, y, y_sqnorm, budget=budget, temporaries=4):
        l = d2 * coef                                  # out-of-place throughout: autograd can pass through
        cm = l.amax(1)
        m_new = cm if m is None else torch.maximum(m, cm)
        shifted = l - m_new.unsqueeze(1)
        e = shifted.exp()
        chunk_s = e.sum(1)
        chunk_t = (e * shifted).sum(1)
        chunk_acc = e @ y[j0:j1]
        if m is None:
            s, t, acc = chunk_s, chunk_t, chunk_acc
        else:
            alpha = torch.exp(m - m_new)
            t = alpha * (t + (m - m_new) * s) + chunk_t
            s = alpha * s + chunk_s
            acc = acc * alpha.unsqueeze(1) + chunk_acc
        m = m_new
        if all_weights:
            kept.append(l)
        if topk is not None:
            cand, idx = l, torch.arange(j0, j1, device=x.device).expand_as(l)
            if top_l is not None:
                cand, idx = torch.cat([top_l, cand], 1), torch.cat([top_i, idx], 1)
            top_l, pos = cand.topk(min(topk, cand.shape[1]), dim=1)
            top_i = idx.gather(1, pos)
    out = {
        "mean": acc / s.unsqueeze(1),
        "entropy": (s.log() - t / s).clamp(min=0),
        "log_normalizer": m + s.log(),
    }
    if topk is not None:
        out["topk_logits"], out["topk_indices"] = top_l, top_i
    if all_weights:
        out["logits"] = torch.cat(kept, 1)
    return out
