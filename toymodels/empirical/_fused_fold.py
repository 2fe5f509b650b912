"""One block of the streaming posterior folded into its running state in a fused CPU pass.

:func:`toymodels.empirical._torch.streaming_state` multiplies the queries by a chunk of training points
(one GEMM, ``g_bj = u_b . v_j``) and must then turn the block into weights and fold them into the running
``(m, s, t)`` of each query. In torch that is seven passes over the ``[B, c]`` block (add the norms, scale,
row maximum, subtract, clamp, exp, row sums). :func:`fold_block` does it in two passes of one numba
kernel, in float64 whatever the block's dtype:

* pass 1: ``dmin_b = min_j (q_j - 2 g_bj)`` with ``q_j = ||v_j||^2``; the block's largest logit is
  ``coef_b dmin_b`` (``coef_b = -1 / (2 sigma_b^2) < 0``) and the new running maximum
  ``m'_b = max(m_b, coef_b dmin_b)``;
* pass 2: ``r_bj = coef_b (q_j - 2 g_bj - dmin_b) + (coef_b dmin_b - m'_b) <= 0`` (the distance less its
  minimum first, so that the largest weight of the block is exactly ``e^0`` however large the logits),
  ``e_bj = exp(r_bj)`` written over ``g`` (the
  input of the second GEMM, ``acc += e v``), ``s'_b = alpha_b s_b + sum_j e_bj`` and
  ``t'_b = alpha_b (t_b + (m_b - m'_b) s_b) + sum_j e_bj r_bj`` with ``alpha_b = e^(m_b - m'_b)``.

The logits here leave out the per-query constant ``rest_b`` of the distances
(``||u_b - v_j||^2 = q_j - 2 g_bj + rest_b``): a constant per query changes neither the weights nor
``t`` (which sums weights times logits *relative* to the maximum), only the maximum, to which the caller
adds ``coef_b rest_b`` once, in float64. The exponentials are :func:`toymodels.empirical._vector_exp.exp`
(within ``4 eps`` relative; exactly 0 for ``r <= -708``, where ``e r`` is then counted as 0), so both
loops vectorize. A weight below the smallest normal number of the block's dtype (``1.2e-38`` in
float32) is written, and summed, as 0: the largest weight is 1, so this moves the mean by less than
``n * 1.2e-38`` relative, while subnormal inputs make the CPU's next GEMM up to 200 times slower (measured:
a ``[400, 20000] x [20000, 3072]`` product, 0.17 s with normal weights, 36 s with subnormal ones), which
happens at small sigma, where most weights underflow. Row sums are reassociated into SIMD lanes. Rows
run in parallel (``prange``) on torch's threads, handed out 8 at a time
(:func:`memgen.threads.numba_like_torch`), so that a thread sharing its core with another process takes
fewer rows instead of holding the others up.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from memgen.threads import numba_like_torch

from ._vector_exp import UNDERFLOW, exp, fmin


@numba.njit(fastmath={"contract"}, cache=True)
def _row_min(g, q):
    mn = np.inf
    for j in range(g.shape[0]):
        mn = fmin(mn, q[j] - 2.0 * np.float64(g[j]))
    return mn


@numba.njit(cache=True)
def _keep_row(g, shift, out):
    for j in range(g.shape[0]):
        out[j] = np.float64(g[j]) - shift


@numba.njit(fastmath={"reassoc", "contract"}, cache=True)           # reassociated: the sums vectorize
def _row_fold(g, q, coef, dmin, delta, tiny):
    s = 0.0
    t = 0.0
    for j in range(g.shape[0]):
        r = coef * ((q[j] - 2.0 * np.float64(g[j])) - dmin) + delta
        e = exp(r)
        e = e if e >= tiny else 0.0                 # no subnormal weights: they slow the next GEMM 200x
        g[j] = e
        s += e
        t += e * (r if r > UNDERFLOW else 0.0)
    return s, t


@numba.njit(parallel=True, cache=True)
def _fold_rows(g, q, coef, m, s, t, alpha, block_s, tiny, products, shift):
    for b in numba.prange(g.shape[0]):
        if products is not None:
            _keep_row(g[b], shift[b], products[b])
        dmin = _row_min(g[b], q)
        m_new = max(m[b], coef[b] * dmin)
        a = np.exp(m[b] - m_new)                       # 0 for the first block (m = -inf)
        bs, bt = _row_fold(g[b], q, coef[b], dmin, coef[b] * dmin - m_new, tiny)
        t[b] = a * (t[b] + ((m[b] - m_new) * s[b] if s[b] > 0 else 0.0)) + bt
        s[b] = a * s[b] + bs
        m[b] = m_new
        alpha[b] = a
        block_s[b] = bs


def fused(g: torch.Tensor) -> bool:
    """Whether the fused kernel applies to blocks computed from ``g``: a contiguous float32/float64 CPU tensor
    that needs no gradient, outside CPU autocast."""
    return (g.device.type == "cpu" and g.dtype in (torch.float32, torch.float64) and g.is_contiguous()
            and not g.requires_grad and not torch.is_autocast_enabled("cpu"))


def fold_block(g: torch.Tensor, q: torch.Tensor, coef: np.ndarray, m: np.ndarray, s: np.ndarray, t: np.ndarray,
               products: torch.Tensor | None = None, shift: torch.Tensor | None = None):
    """Fold the block ``g`` ``[B, c]`` (``g_bj = u_b . v_j``) with column norms ``q`` ``[c]`` into the float64
    running state ``m, s, t`` ``[B]`` (updated in place; start from ``-inf, 0, 0``), overwriting ``g`` with
    the weights ``e_bj`` relative to the new maximum (module doc). Returns ``(alpha, block_s)`` ``[B]``
    float64 tensors: the factor that moves the old accumulator to the new maximum, and ``sum_j e_bj``.
    ``products`` (a float64 ``[B, c]`` CPU view) first receives ``g_bj - shift_b`` (``shift`` [B, 1] or None
    for 0), as :func:`memgen.pairwise.keep_products` writes it, in the same pass that reads ``g``."""
    alpha, block_s = np.empty(g.shape[0]), np.empty(g.shape[0])
    if products is not None:
        products = products.numpy()
        shift = np.zeros(g.shape[0]) if shift is None else shift.reshape(-1).numpy()
    with numba_like_torch(chunk=8):
        _fold_rows(g.numpy(), q.detach().numpy().astype(np.float64, copy=False), coef, m, s, t, alpha, block_s,
                   float(torch.finfo(g.dtype).tiny), products, shift)
    return torch.from_numpy(alpha), torch.from_numpy(block_s)

