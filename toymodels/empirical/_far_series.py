"""Exact posterior at large sigma by a certified Taylor (far-field) series: O(K) work per query, not O(n).

With ``c`` the training mean, ``R = max_j |y_j - c|``, ``v_j = y_j - c``, ``h = 1 / (2 sigma^2)`` and the
scaled variables ``at = (x - c) R / sigma^2``, ``bt_j = v_j / R`` (so ``|bt_j| <= 1`` and
``at . bt_j = (x - c) . v_j / sigma^2``), the logits split as
    ``l_j = -h |x - c|^2 - s0 + at . bt_j - e_j``,  ``e_j = h |v_j|^2 - s0 >= 0``,  ``s0 = h min_j |v_j|^2``.
With ``w_j = exp(-e_j) <= 1`` and ``exp(at . bt_j) = sum_alpha at^alpha bt_j^alpha / alpha!`` (multi-indices
of total degree ``|alpha| <= p``; ``K = C(p + d, d)`` of them), the moments over the training set
    ``M0_alpha = sum_j w_j phi_alpha(j)``, ``M1_alpha = sum_j w_j phi_alpha(j) v_j``,
    ``M2_alpha = sum_j w_j phi_alpha(j) e_j``, ``Mabs_alpha = sum_j w_j |phi_alpha(j)|``,
    ``phi_alpha(j) = bt_j^alpha / alpha!`` (``|phi| <= 1``: nothing overflows)
give ``S = sum_alpha at^alpha M0_alpha ~ sum_j w_j e^{at.bt_j}``, likewise ``N`` (from M1, ``[d]``), ``Q``
(from M2) and ``A = sum_alpha |at^alpha| Mabs_alpha``, and then
    ``mean = c + N / S``,  ``log Z = -h |x - c|^2 - s0 + log S``,
    ``entropy = log Z - E[l] = log S - at . N / (R S) + Q / S``.
The moments cost ``n K (d + 3)`` per sigma, each query ``K (d + 3)``.

What is certified, per query, with ``T = |at| (1 + 1e-14) >= |at . bt_j|`` for every j, ``W = M0_0``,
``r = h R^2`` (the largest ``e_j + s0``) and ``u = 2^-53``:

* truncation: ``|e^t - sum_{k <= p} t^k / k!| <= e^|t| |t|^(p+1) / (p+1)!``, so the truncation error
  of S is at most ``W e^T T^(p+1) / (p+1)!`` (that of N at most R times, of Q at most r times as much);
* rounding (first order, ``k u / (1 - k u) <= 1.01 k u`` for the counts here): every product
  ``at^alpha w_j phi_alpha(j) (1 or v_j)`` reaches its sum with at most ``g = 3 p + 2 + D_n +
  ceil(log2 K)`` roundings (2 per degree in phi, p - 1 in at^alpha, one in ``v_j`` and one for its
  product, ``D_n`` additions over the training points, see :func:`summation_depth`, one product with
  the moment and ``ceil(log2 K)`` pairwise additions over the monomials), so the rounding error of S
  is at most ``1.01 g u A``, that of N at most R times as much; in Q the factor ``e_j`` carries an
  absolute error ``(d + 5)(r + 1) u``, which adds ``1.01 (d + 5)(r + 1) u A <= (r + 1) 1.01 g u A``
  (``g >= BLOCK - 1 >= d + 5``);
* inputs: ``at``, ``bt_j`` and ``e_j`` are themselves rounded (``|at . bt_j|`` by at most ``8 u T``, the
  log-weight ``e_j`` by at most ``(d + 5)(r + 1) u``); the weights being positive, this moves S by at
  most ``g_in = 1.01 (8 T + (d + 5)(r + 1)) u`` relative, like the rounding of the dense kernel's logits.

With ``delta = W e^T T^(p+1) / ((p+1)! S) + 1.01 g u A / S + g_in`` (computed with the computed S, W, A),
S is within ``delta`` relative, the mean within ``2 delta R`` (each coordinate), the log normalizer
within ``delta`` and the entropy within ``delta (2 + 2 T + 3 r)`` (``log S``: delta; ``at . N / (R S)``:
``2 T delta``; ``Q / S``: ``(2 r + r + 1) delta``), to first order and up to the rounding of these
final formulas. A query is accepted when ``delta <= SERIES_TOL`` and its entropy bound is at most
``ENTROPY_TOL``; every other query goes to the exact kernels unchanged. Nothing is assumed about the
data: a query whose series converges too slowly, or whose terms cancel (``A >> S``), is rejected.

Queries are grouped by equal sigma. For each group the candidates are the queries with
``T <= T_LIMIT``; the degree p is the smallest with ``T_max^(p+1) / (p+1)! <= TRUNCATION_TARGET``, and
the series is used only when its estimated cost is clearly below the dense kernel's (:func:`plan`):
a cost rule, which decides speed, never the result. The moments are summed in blocks of
``BLOCK`` points, and the block sums pairwise, in ``numba.get_num_threads()`` parts; the training set
is read in place (float32 or float64, memory-mapped included) and never copied.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np
from scipy.special import comb

from memgen.pairwise import DEFAULT_BUDGET

from ._numba import _dot, readable

SERIES_TOL = 1e-13
"""Largest accepted certified relative error of S (the mean's error is below ``2 SERIES_TOL R``)."""

ENTROPY_TOL = 1e-11
"""Largest accepted certified absolute error of the entropy (the tolerance between the pruned and the
dense kernels in tests/test_pruned.py)."""

T_LIMIT = 6.0
"""Queries with ``T = |x - c| R / sigma^2`` above this are not tried (the series would need p > 45)."""

TRUNCATION_TARGET = 1e-17
"""p is the smallest degree with ``T^(p+1) / (p+1)! <= TRUNCATION_TARGET`` for the group's largest T."""

BLOCK = 32
"""Training points per block whose sums are formed directly (at most ``BLOCK - 1`` additions each)."""

DENSE_PAIR_COST = 4.0
"""Cost of one (query, training point) pair of the dense kernel, in units of one moment term (one
point, monomial and moment); measured at d = 2, n = 20,000, p = 36: about 1.3e9 moment terms and 3.3e8
dense pairs per second on 2 threads."""

EVALUATION_COST = 3.0
"""Cost of one series term at a query (one monomial and sum), in units of one moment term (measured
as above: 4.4e8 per second)."""

SERIES_MARGIN = 2.0
"""The series is used when its estimated cost times this is below the dense kernel's."""

ROUND = 1.01 * 2.0 ** -53
"""``k u / (1 - k u) <= ROUND k`` for ``k u <= 0.01``."""


@functools.lru_cache(maxsize=64)
def monomials(d: int, p: int) -> tuple:
    """``(parent, var, power)`` ``[K]`` of the multi-indices of total degree ``<= p`` in graded order.

    ``alpha = parent + e_var`` with ``var`` the last nonzero coordinate of ``alpha`` and ``power =
    alpha_var``, so ``b^alpha / alpha! = (b^parent / parent!) b_var / power``; entry 0 is ``alpha = 0``."""
    index, parent, var, power = {(0,) * d: 0}, [0], [0], [1]
    layer = [(0,) * d]
    for _ in range(p):
        nxt = []
        for e in layer:
            last = max((i for i in range(d) if e[i]), default=0)
            for i in range(last, d):
                f = e[:i] + (e[i] + 1,) + e[i + 1:]
                index[f] = len(parent)
                parent.append(index[e])
                var.append(i)
                power.append(f[i])
                nxt.append(f)
        layer = nxt
    return tuple(np.array(a, dtype=np.int64) for a in (parent, var, power))


def degree(T: np.ndarray) -> np.ndarray:
    """Smallest ``p >= 0`` with ``T^(p+1) / (p+1)! <= TRUNCATION_TARGET``, elementwise (``T <= T_LIMIT``)."""
    p = np.zeros(T.shape, dtype=np.int64)
    term = T.astype(np.float64)
    while (big := term > TRUNCATION_TARGET).any():
        p += big
        term = np.where(big, term * T / (p + 1), term)
    return p


def levels(n: int, parts: int) -> int:
    """Levels of the binary counter that sums one part's block sums: ``2^levels`` exceeds their number."""
    blocks = -(-n // BLOCK)
    return max(1, -(-blocks // parts)).bit_length()


def summation_depth(n: int, parts: int) -> int:
    """Most additions a product ``w_j phi_alpha(j) (...)`` undergoes in the moment sums: ``BLOCK - 1``
    within its block, at most ``2 L`` in the pairwise (binary counter) sum of ``2^L > blocks per part``
    block sums, and ``parts - 1`` adding the parts."""
    return BLOCK - 1 + 2 * levels(n, parts) + parts - 1


def moment_bytes(d: int, p: int, n: int, parts: int) -> int:
    """Memory of the moment sums: per part, the binary counter's levels and one block's scratch."""
    K = math.comb(p + d, d)
    return 8 * parts * ((levels(n, parts) + 1) * (d + 3) * K + (K + p * d + d + 1) * BLOCK)


def plan(dist: np.ndarray, radius: float, sigma: np.ndarray, n: int, d: int) -> list:
    """``[(sigma, queries, p)]``: the sigma groups where the series is worth trying, with its candidates
    (``T <= T_LIMIT``, estimated with ``radius``) and degree. Cost rule (speed only): the moments and
    the evaluation at m candidates cost ``(n + EVALUATION_COST m) K (d + 3)`` terms, the dense kernel
    ``DENSE_PAIR_COST m n``; the series must be ``SERIES_MARGIN`` times cheaper, and its sums fit in
    the memory budget."""
    values, inverse = np.unique(sigma, return_inverse=True)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        T = dist * radius / sigma ** 2
    cand = T <= T_LIMIT                                     # NaN and inf are not candidates
    m = np.bincount(inverse[cand], minlength=len(values))
    t_max = np.zeros(len(values))
    np.maximum.at(t_max, inverse[cand], T[cand])
    p = degree(t_max)
    K = comb(p + d, d)
    worth = SERIES_MARGIN * (n + EVALUATION_COST * m) * K * (d + 3) < DENSE_PAIR_COST * m * n
    parts = numba.get_num_threads()
    return [(values[g], np.flatnonzero(cand & (inverse == g)), int(p[g])) for g in np.flatnonzero(worth)
            if moment_bytes(d, int(p[g]), n, parts) <= DEFAULT_BUDGET]


@numba.njit(cache=True)
def _extent(y, c):
    """``(min_j |y_j - c|^2, max_j |y_j - c|^2)`` in float64."""
    lo, hi = np.inf, 0.0
    for j in range(y.shape[0]):
        sq = 0.0
        for k in range(y.shape[1]):
            sq += (y[j, k] - c[k]) ** 2
        lo, hi = min(lo, sq), max(hi, sq)
    return lo, hi


@numba.njit(cache=True)
def _block_inputs(y, c, inv_r, h, s0, j0, L, v, e, phi0, bdiv):
    """For points ``j0 .. j0 + L``: ``v = y - c``, ``e = h |v|^2 - s0``, ``phi0 = w = exp(-e)``, and
    ``bdiv[m - 1, k] = (v_k / R) / m``."""
    d = y.shape[1]
    for q in range(L):
        sq = 0.0
        for k in range(d):
            v[k, q] = y[j0 + q, k] - c[k]
            sq += v[k, q] * v[k, q]
        e[q] = sq * h - s0
        phi0[q] = math.exp(-e[q])
    for m in range(bdiv.shape[0]):
        for k in range(d):
            for q in range(L):
                bdiv[m, k, q] = v[k, q] * inv_r / (m + 1)


@numba.njit(fastmath={"reassoc", "contract"}, cache=True)
def _block_sums(parent, var, power, L, v, e, phi, bdiv, out):
    """``out[:, alpha]`` = the block's sums of ``w phi_alpha`` times ``1``, ``v`` (d rows), ``e``, and of
    ``|w phi_alpha|`` (``phi[0]`` holds ``w``); any order of L terms adds at most ``L - 1`` roundings."""
    d = v.shape[0]
    for a in range(parent.shape[0]):
        row = phi[a, :L]
        if a > 0:
            prev, f = phi[parent[a], :L], bdiv[power[a] - 1, var[a], :L]
            for q in range(L):
                row[q] = prev[q] * f[q]
        s, sa = 0.0, 0.0
        for q in range(L):
            s += row[q]
            sa += abs(row[q])
        out[0, a] = s
        for k in range(d):
            out[1 + k, a] = _dot(row, v[k, :L])
        out[d + 1, a] = _dot(row, e[:L])
        out[d + 2, a] = sa


@numba.njit(cache=True)
def _push(counter, used, carry):
    """Add ``carry`` to a binary counter of partial sums: level l holds the sum of ``2^l`` block sums."""
    lv = 0
    while used[lv]:
        carry += counter[lv]
        used[lv] = False
        lv += 1
    counter[lv] = carry
    used[lv] = True


@numba.njit(parallel=True, cache=True)
def _moments(y, c, inv_r, h, s0, parent, var, power, p, nlev, out):
    """``out[t]`` ``[d + 3, K]``: the moments (module doc) over the t-th of ``out.shape[0]`` parts of the
    points, summed through a binary counter of ``nlev`` levels (:func:`levels`)."""
    n, d = y.shape
    K, parts = parent.shape[0], out.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    per = (blocks + parts - 1) // parts
    for t in numba.prange(parts):
        phi, bdiv = np.empty((K, BLOCK)), np.empty((max(p, 1), d, BLOCK))
        v, e = np.empty((d, BLOCK)), np.empty(BLOCK)
        block, counter, used = np.empty((d + 3, K)), np.empty((nlev, d + 3, K)), np.zeros(nlev, np.bool_)
        for b in range(t * per, min(blocks, t * per + per)):
            j0 = b * BLOCK
            L = min(BLOCK, n - j0)
            _block_inputs(y, c, inv_r, h, s0, j0, L, v, e, phi[0], bdiv[:p])
            _block_sums(parent, var, power, L, v, e, phi, bdiv, block)
            _push(counter, used, block)
        out[t] = 0.0
        for lv in range(nlev):
            if used[lv]:
                out[t] += counter[lv]


@numba.njit(cache=True)
def _pairwise(t):
    """``sum(t)`` by pairwise additions in place (each term undergoes at most ``ceil(log2 len)``)."""
    step = 1
    while step < t.shape[0]:
        for i in range(0, t.shape[0] - step, 2 * step):
            t[i] += t[i + step]
        step *= 2
    return t[0]


@numba.njit(parallel=True, cache=True)
def _evaluate(at, M, parent, var, out):
    """``out[i] = (S, N [d], Q, A)``: the series of the moments ``M`` at ``at[i]`` (module doc)."""
    nq, K, rows = at.shape[0], parent.shape[0], M.shape[0]
    for i in numba.prange(nq):
        mono, terms = np.empty(K), np.empty(K)
        mono[0] = 1.0
        for a in range(1, K):
            mono[a] = mono[parent[a]] * at[i, var[a]]
        for r in range(rows):
            for a in range(K):
                terms[a] = (abs(mono[a]) if r == rows - 1 else mono[a]) * M[r, a]
            out[i, r] = _pairwise(terms)


def certified_error(sums: np.ndarray, T: np.ndarray, W: float, p: int, depth: int, K: int, r: float,
                    d: int) -> np.ndarray:
    """``delta`` of the module doc per query (inf where S <= 0)."""
    S, A = sums[:, 0], sums[:, -1]
    tail = np.ones_like(T)
    for k in range(1, p + 2):
        tail *= T / k                                       # T^(p+1) / (p+1)!
    g = 3 * p + 2 + depth + math.ceil(math.log2(K))
    inputs = ROUND * (8 * T + (d + 5) * (r + 1))
    S_pos = np.where(S > 0, S, 1.0)
    return np.where(S > 0, (W * np.exp(T) * tail + ROUND * g * A) / S_pos + inputs, np.inf)


def series_posterior(x: np.ndarray, y: np.ndarray, center: np.ndarray, radius: float, sigma: np.ndarray):
    """``(taken, out)``: the queries (bool ``[B]``) whose series the certificate accepts, and their mean,
    entropy and log normalizer (float64, the taken rows only). ``x`` and ``sigma`` are float64."""
    B, d = x.shape
    n = y.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        u = x - center
        dist = np.sqrt((u ** 2).sum(1))
    taken = np.zeros(B, dtype=bool)
    out = {"mean": np.empty((B, d)), "entropy": np.empty(B), "log_normalizer": np.empty(B)}
    groups = plan(dist, radius, sigma, n, d)
    if groups:
        y = readable(y)
        lo, hi = _extent(y, center)
        R = math.sqrt(hi)
        for s, idx, p in groups:
            h = 0.5 / s / s
            if R > 0 and math.isfinite(h * hi):
                _series_group(u[idx], y, center, R, h * lo, h, p, idx, taken, out)
    return taken, {k: v[taken] for k, v in out.items()}


def _series_group(u, y, center, R, s0, h, p, idx, taken, out) -> None:
    """Moments at one sigma, the series at its candidate queries ``idx`` (``u = x - c``), and the
    accepted ones written into ``taken`` and ``out``."""
    n, d = y.shape
    parent, var, power = monomials(d, p)
    parts = numba.get_num_threads()
    M = np.empty((parts, d + 3, parent.shape[0]))
    _moments(y, center, 1.0 / R, h, s0, parent, var, power, p, levels(n, parts), M)
    M = M.sum(0)
    at = u * (R * 2 * h)
    sums = np.empty((len(idx), d + 3))
    _evaluate(at, M, parent, var, sums)
    T = np.sqrt((at ** 2).sum(1)) * (1 + 1e-14)
    r = h * R * R
    delta = certified_error(sums, T, M[0, 0], p, summation_depth(n, parts), parent.shape[0], r, d)
    ok = (delta <= SERIES_TOL) & (delta * (2 + 2 * T + 3 * r) <= ENTROPY_TOL)
    S, N, Q = sums[ok, 0], sums[ok, 1:d + 1], sums[ok, d + 1]
    q = idx[ok]
    taken[q] = True
    out["mean"][q] = center + N / S[:, None]
    logS = np.log(S)
    out["log_normalizer"][q] = -h * (u[ok] ** 2).sum(1) - s0 + logS
    out["entropy"][q] = np.maximum(logS - (at[ok] * N).sum(1) / (R * S) + Q / S, 0.0)
