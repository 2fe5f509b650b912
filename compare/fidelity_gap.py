"""Train- vs test-referenced fidelity (Marion & Wu) with size-matched references, in a fixed random-feature space.

A generator's samples ``X`` are compared with its training set ``T`` (``m`` points) and with held-out data. Any
distance to an empirical reference depends on the reference's size (``m`` points are farther from everything than
their population), so the held-out reference has exactly ``m`` points too: ``K`` disjoint held-out subsets
``V_1..V_K`` of size ``m`` (:func:`held_out_subsets`), their distances averaged. The gap, in units of the gap of a
generator that outputs the training set itself, is

    ``gap = (D_val - D_train) / D_copy``,  ``D_train = FD(X, T)``,  ``D_val = (1/K) sum_k FD(X, V_k)``,
    ``D_copy = (1/K) sum_k FD(T, V_k)``

with ``FD`` the Fréchet distance of Gaussians fitted to the features (:func:`weighted_frechet`). When the samples do
not depend on the split (training and held-out points exchangeable, e.g. held-out images as the generator),
``E FD(X, T) = E FD(X, V_k)``: the gap is 0 up to noise. ``X = T`` gives exactly 1 (``D_train = 0``,
``D_val = D_copy``). The denominator is not ``D_val``: for a near-perfect generator ``D_val`` is itself only
finite-sample noise, and a ratio to it is noise of order 1.

The feature map (:func:`random_relu_features`) needs no downloaded weights: the ``k`` units of a one-hidden-layer
ReLU network with fixed random weights, ``phi_j(x) = max(0, w_j . vec(x) / sqrt(d) + b_j)``, ``w_j ~ N(0, I_d)``,
``b_j ~ N(0, 1)``, from a seed.

Intervals (:func:`referenced_gaps`): the two-level bootstrap of :mod:`compare.bootstrap` (seeds, then within each
drawn seed its samples, the training points and each held-out subset, all resampled with replacement), written
with resampling weights: the weighted mean ``mu = sum_i w_i f_i / sum_i w_i`` and covariance
``C = sum_i w_i (f_i - mu)(f_i - mu)^T / (sum_i w_i - 1)`` (with integer weights: the unbiased covariance of the
repeated points, so unit weights give :func:`compare.fidelity.frechet_distance`).
"""
from __future__ import annotations

import numpy as np
import torch

from memgen.checks import integer

from .bootstrap import bootstrap


def random_relu_features(dim: int, k: int = 32, *, seed: int = 0):
    """The fixed random feature map of the module doc: a callable ``[B, *shape] -> [B, k]`` (float64) on inputs of
    ``dim = prod(shape)`` values."""
    dim, k = integer(dim, "dim"), integer(k, "k")
    g = torch.Generator().manual_seed(integer(seed, "seed", 0))
    w = torch.randn(dim, k, generator=g, dtype=torch.float64) / dim ** 0.5
    b = torch.randn(k, generator=g, dtype=torch.float64)

    def phi(x) -> torch.Tensor:
        x = torch.as_tensor(x).reshape(len(x), -1).double()
        if x.shape[1] != dim:
            raise ValueError(f"x: expected {dim} values per point, got {x.shape[1]}")
        return torch.relu(x @ w + b)
    return phi


def held_out_subsets(n_held_out: int, size: int, count: int, *, seed: int = 0) -> list:
    """``count`` disjoint random index sets of ``size`` points each out of ``n_held_out`` (the size-matched held-out
    references), from ``seed``."""
    n_held_out, size, count = integer(n_held_out, "n_held_out"), integer(size, "size"), integer(count, "count")
    if size * count > n_held_out:
        raise ValueError(f"count: {count} disjoint subsets of {size} need {size * count} held-out points, "
                         f"got {n_held_out}")
    perm = np.random.default_rng(integer(seed, "seed", 0)).permutation(n_held_out)
    return [perm[i * size:(i + 1) * size] for i in range(count)]


def _moments(w: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean ``[r, k]`` and covariance ``[r, k, k]`` (module doc) of features ``f`` ``[n, k]`` under weights
    ``w`` ``[r, n]``."""
    total = w.sum(1, keepdim=True)
    mu = (w @ f) / total
    centred = f[None] - mu[:, None]                                     # [r, n, k]
    cov = torch.einsum("rn,rni,rnj->rij", w, centred, centred) / (total - 1)[:, :, None]
    return mu, cov


def _psd_sqrt(c: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(c)
    return (vecs * vals.clamp(min=0).sqrt()[..., None, :]) @ vecs.transpose(-1, -2)


def weighted_frechet(wa, fa, wb, fb) -> torch.Tensor:
    """Fréchet distance ``[r]`` between the features ``fa`` ``[n, k]`` under weights ``wa`` ``[r, n]`` and ``fb``
    ``[m, k]`` under ``wb`` ``[r, m]``: ``|mu_a - mu_b|^2 + tr C_a + tr C_b - 2 tr (C_a^(1/2) C_b C_a^(1/2))^(1/2)``
    with the weighted moments of the module doc (each weight row must sum to more than 1)."""
    fa, fb = (torch.as_tensor(f, dtype=torch.float64) for f in (fa, fb))
    wa, wb = (torch.as_tensor(w, dtype=torch.float64) for w in (wa, wb))
    mu_a, ca = _moments(wa, fa)
    mu_b, cb = _moments(wb, fb)
    root = _psd_sqrt(ca)
    cross = torch.linalg.eigvalsh(root @ cb @ root).clamp(min=0).sqrt().sum(-1)
    tr = torch.diagonal(ca, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(cb, dim1=-2, dim2=-1).sum(-1)
    return (((mu_a - mu_b) ** 2).sum(-1) + tr - 2 * cross).clamp(min=0)


def _held_out_distance(w, f, wv: list, v: list) -> torch.Tensor:
    return torch.stack([weighted_frechet(w, f, wk, fk) for wk, fk in zip(wv, v)]).mean(0)


def _seed_gaps(wx: list, x: list, wt, t, wv: list, v: list) -> torch.Tensor:
    """Gaps ``[r, A]`` (module doc) of one seed's ``A`` sample sets ``x`` (weights ``wx``) against the training
    features ``t`` and the held-out subsets ``v``."""
    d_copy = _held_out_distance(wt, t, wv, v)
    return torch.stack([(_held_out_distance(w, f, wv, v) - weighted_frechet(w, f, wt, t)) / d_copy
                        for w, f in zip(wx, x)], 1)


def referenced_gaps(samples: list, train, held_out: list, *, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """The gap (module doc) of each arm (e.g. a generalizing and a memorizing checkpoint) and each arm's
    gap minus the first arm's, averaged over seeds, with two-level bootstrap intervals.

    Args:
        samples: one list per seed of ``A`` feature arrays ``[N, k]`` (the arms, in the same order in every seed).
        train: the training features ``[m, k]``; held_out: ``K`` arrays ``[m, k]`` (size-matched subsets).

    Returns ``{'gap': (est, lo, hi), 'difference': (est, lo, hi)}``, arrays of ``A`` and ``A - 1`` values; a
    replicate's statistic is the mean over its drawn seeds (with multiplicity) of each seed's gaps.
    """
    n_seeds, n_arms = len(samples), len(samples[0])
    if n_seeds == 0 or any(len(s) != n_arms for s in samples):
        raise ValueError("samples: expected one list of the same number of arms per seed")
    t = torch.as_tensor(train, dtype=torch.float64)
    v = [torch.as_tensor(f, dtype=torch.float64) for f in held_out]
    if any(f.shape != t.shape for f in v):
        raise ValueError(f"held_out: every subset must have the training set's shape {tuple(t.shape)}")
    x = [[torch.as_tensor(f, dtype=torch.float64) for f in s] for s in samples]
    # bootstrap samples: each arm (all seeds' samples in order), then training and held-out points once per seed
    sizes = [sum(len(s[a]) for s in x) for a in range(n_arms)] + [n_seeds * len(t)] * (1 + len(v))
    labels = [np.concatenate([np.full(len(s[a]), i) for i, s in enumerate(x)]) for a in range(n_arms)]
    labels += [np.repeat(np.arange(n_seeds), len(t))] * (1 + len(v))

    def statistic(*weights):
        ws = [torch.as_tensor(w, dtype=torch.float64) for w in weights]
        total = torch.zeros(ws[0].shape[0], n_arms, dtype=torch.float64)
        count = torch.zeros(ws[0].shape[0], 1, dtype=torch.float64)
        start = [0] * n_arms
        for i, s in enumerate(x):
            wx = []
            for a in range(n_arms):
                wx.append(ws[a][:, start[a]:start[a] + len(s[a])])
                start[a] += len(s[a])
            drawn = wx[0].sum(1) / len(s[0])                 # how often seed i was drawn in each replicate
            keep = drawn > 0
            if keep.any():
                refs = [w[keep, i * len(t):(i + 1) * len(t)] for w in ws[n_arms:]]
                g = _seed_gaps([w[keep] for w in wx], s, refs[0], t, refs[1:], v)
                total[keep] += drawn[keep, None] * g
                count[keep, 0] += drawn[keep]
        gaps = total / count
        return torch.cat([gaps, gaps[:, 1:] - gaps[:, :1]], 1).numpy()

    est, lo, hi = bootstrap(statistic, *sizes, n_boot=n_boot, level=level, seed=seed, clusters=labels)
    split = lambda a: tuple(np.asarray(q)[a] for q in (est, lo, hi))  # noqa: E731
    return {"gap": split(slice(0, n_arms)), "difference": split(slice(n_arms, None))}
