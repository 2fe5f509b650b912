"""Exact denoisers of Gaussian and Gaussian-mixture distributions.

For one Gaussian ``N(mu, C)`` with ``C = Q diag(lambda) Q^T``:
    ``D(x, sigma) = mu + C (C + sigma^2 I)^-1 (x - mu) = mu + Q diag(lambda / (lambda + sigma^2)) Q^T (x - mu)``.
For a mixture ``sum_k pi_k N(mu_k, C_k)`` the posterior mean is the responsibility-weighted sum
    ``D(x, sigma) = sum_k r_k(x) D_k(x, sigma)``,  ``r_k ∝ pi_k N(x; mu_k, C_k + sigma^2 I)``
(log-sum-exp over components). Covariances are given per component as a scalar (isotropic), a
vector (diagonal) or a matrix (full, stored by its eigendecomposition).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_batch, as_points, as_tensor, integer, non_negative
from memgen.contract import Denoiser


def _component(mean: torch.Tensor, cov, rank: int | None, name: str):
    """Return ``(eigvals [r], eigvecs [d, r] or None)`` for one covariance (None: axis-aligned)."""
    d = mean.numel()
    c = as_tensor(cov, name, dtype=torch.float64)
    if c.dim() == 0:
        lam, q = c.expand(d).clone(), None
    elif c.dim() == 1:
        if c.shape[0] != d:
            raise ValueError(f"{name}: diagonal covariance has length {c.shape[0]}, expected {d}")
        lam, q = c.clone(), None
    elif c.dim() == 2:
        if tuple(c.shape) != (d, d):
            raise ValueError(f"{name}: covariance has shape {tuple(c.shape)}, expected ({d}, {d})")
        if not torch.allclose(c, c.T, atol=1e-10 * max(1.0, float(c.abs().max()))):
            raise ValueError(f"{name}: covariance is not symmetric")
        lam, q = torch.linalg.eigh(c)
        lam, q = lam.flip(0), q.flip(1)
    else:
        raise ValueError(f"{name}: expected a scalar, [d] or [d, d] covariance, got shape {tuple(c.shape)}")
    if bool((lam < -1e-8 * max(1.0, float(lam.abs().max()))).any()):
        raise ValueError(f"{name}: covariance is not positive semi-definite (min eigenvalue {float(lam.min()):.3g})")
    lam = lam.clamp(min=0)
    if rank is not None:
        if q is None:
            q = torch.eye(d, dtype=torch.float64)
            order = lam.argsort(descending=True)
            lam, q = lam[order], q[:, order]
        lam, q = lam[:rank], q[:, :rank]
    return lam, q


class GMMDenoiser(Denoiser):
    """Exact posterior mean of a known Gaussian mixture ``sum_k pi_k N(mu_k, C_k)``.

    Args:
        weights: mixing weights ``[K]`` (normalized here).
        means: ``[K, *shape]``.
        covs: one covariance per component: a list or tensor of scalars ``[K]``, diagonals ``[K, d]``
            or full matrices ``[K, d, d]``.
        rank: keep only the top ``rank`` eigen-directions of each covariance (the rest has variance 0).
        dtype: computation dtype (float32 default, float64 on request).
    """

    _cov_name = "covs[{k}]"
    """How errors about the covariance of component k name it."""

    def __init__(self, weights, means, covs, *, rank: int | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        mu = as_points(means, "means", dtype=torch.float64)
        K = mu.shape[0]
        if mu[0].numel() == 0:
            raise ValueError(f"means: each mean is empty (shape {tuple(mu.shape)})")
        w = as_tensor(weights, "weights", dtype=torch.float64).reshape(-1)
        if w.shape[0] != K:
            raise ValueError(f"weights: {w.shape[0]} weights for {K} components")
        if bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError("weights: must be non-negative and not all zero")
        rank = None if rank is None else integer(rank, "rank")
        self.event_shape = tuple(mu.shape[1:])
        flat = mu.reshape(K, -1)
        if isinstance(covs, (np.ndarray, torch.Tensor)):
            covs = list(covs) if covs.ndim > 0 else [covs] * K
        elif not isinstance(covs, (list, tuple)):
            raise TypeError(f"covs: expected one covariance per component (a list or an array), got {type(covs).__name__}")
        if len(covs) != K:
            raise ValueError(f"covs: {len(covs)} covariances for {K} components")
        comps = [_component(flat[k], covs[k], rank, self._cov_name.format(k=k)) for k in range(K)]
        self.dtype = dtype
        self.register_buffer("log_weights", (w / w.sum()).log().to(dtype))
        self.register_buffer("means", flat.to(dtype))
        for k, (lam, q) in enumerate(comps):          # buffers, so that .to(device) moves them
            self.register_buffer(f"eigvals_{k}", lam.to(dtype))
            self.register_buffer(f"eigvecs_{k}", None if q is None else q.to(dtype))

    @property
    def eigvals(self) -> list:
        return [getattr(self, f"eigvals_{k}") for k in range(self.means.shape[0])]

    @property
    def eigvecs(self) -> list:
        return [getattr(self, f"eigvecs_{k}") for k in range(self.means.shape[0])]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _component_terms(self, xf: torch.Tensor, s2: torch.Tensor, k: int):
        """``(log N(x; mu_k, C_k + s2 I), D_k(x))`` for flattened x [B, d], s2 [B, 1].

        The log-density is computed in float64 (so that ``|x|`` up to ~1e150 keeps finite squares, e.g. a
        float32 ``|x| = 1e20``); ``D_k`` in the model's dtype.
        """
        lam, q = getattr(self, f"eigvals_{k}"), getattr(self, f"eigvecs_{k}")
        r = xf - self.means[k]
        r64, lam64, s64 = xf.double() - self.means[k].double(), lam.double(), s2.double()
        if q is None:
            var64 = lam64 + s64                                       # [B, d]
            logp = -0.5 * ((r64 ** 2 / var64) + torch.log(2 * math.pi * var64)).sum(1)
            return logp, self.means[k] + r * (lam / (lam + s2))
        z64 = r64 @ q.double()                                        # [B, r]
        var64 = lam64 + s64
        logp = -0.5 * ((z64 ** 2 / var64).sum(1) + torch.log(2 * math.pi * var64).sum(1))
        d_perp = self.dim - q.shape[1]
        if d_perp:                                                    # outside span(q) only the noise: variance s2
            perp = ((r64 ** 2).sum(1) - (z64 ** 2).sum(1)).clamp(min=0)
            logp = logp - 0.5 * (perp / s64[:, 0] + d_perp * torch.log(2 * math.pi * s64[:, 0]))
        z = r @ q
        return logp, self.means[k] + (z * (lam / (lam + s2))) @ q.T

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma, dtype=self.dtype)
        xf, s2 = x.reshape(x.shape[0], -1), (s ** 2).unsqueeze(1)
        terms = [self._component_terms(xf, s2, k) for k in range(self.means.shape[0])]
        if len(terms) == 1:                                           # one Gaussian: no responsibilities
            out = terms[0][1]
        else:
            joint = torch.stack([logp for logp, _ in terms], 1) + self.log_weights.double()
            if not bool(torch.isfinite(joint.amax(1)).all()):
                raise ValueError(f"x: too far from every component to weigh them in float64 "
                                 f"(max |x| = {float(xf.abs().max()):.3g})")
            r = torch.softmax(joint, 1).to(xf.dtype)                 # sums to 1 even where joint ~ -1e40
            out = sum(r[:, k:k + 1] * dk for k, (_, dk) in enumerate(terms))
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"x: D(x, sigma) overflows {self.dtype} (max |x| = {float(xf.abs().max()):.3g})")
        return out.reshape(x.shape)

    def log_density(self, x, sigma: float = 0.0) -> torch.Tensor:
        """``log p_sigma(x)`` of the mixture convolved with ``N(0, sigma^2 I)`` (``sigma = 0``: the data density).

        ``log p = logsumexp_k (log pi_k + log N(x; mu_k, C_k + sigma^2 I))``, computed in float64.
        At ``sigma = 0`` a rank-deficient covariance has no density; pass a small sigma then.
        """
        x = as_batch(x, "x", event_shape=self.event_shape, dtype=self.dtype)
        s2 = torch.full((x.shape[0], 1), non_negative(sigma, "sigma") ** 2, dtype=self.dtype)
        xf = x.reshape(x.shape[0], -1)
        logps = torch.stack([self._component_terms(xf, s2, k)[0] for k in range(self.means.shape[0])], 1)
        return torch.logsumexp(logps + self.log_weights.double(), 1).to(self.dtype)

    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` exact samples of the mixture ``[num, *shape]``."""
        num = integer(num, "num")
        k = torch.multinomial(self.log_weights.exp().float(), num, replacement=True, generator=generator)
        z = torch.randn(num, self.dim, generator=generator, dtype=self.dtype)
        out = self.means[k].clone()
        for c in range(self.means.shape[0]):
            sel = k == c
            lam, q = self.eigvals[c], self.eigvecs[c]
            if q is None:
                out[sel] += z[sel] * lam.sqrt()
            else:
                out[sel] += (z[sel][:, :q.shape[1]] * lam.sqrt()) @ q.T
        return out.reshape(num, *self.event_shape)


class GaussianDenoiser(GMMDenoiser):
    """``D(x, sigma) = mu + C (C + sigma^2 I)^-1 (x - mu)``: the exact denoiser of ``N(mu, C)``.

    Build from a given mean and covariance (scalar, diagonal or full), or with
    :meth:`fit` from data (sample mean and covariance, optionally truncated to ``rank``).
    """

    _cov_name = "cov"

    def __init__(self, mean, cov, *, rank: int | None = None, dtype: torch.dtype = torch.float32):
        mu = as_tensor(mean, "mean", dtype=torch.float64)
        if mu.numel() == 0:
            raise ValueError("mean: is empty")
        super().__init__(torch.ones(1), mu[None], [cov], rank=rank, dtype=dtype)

    @classmethod
    def fit(cls, data, *, rank: int | None = None, dtype: torch.dtype = torch.float32) -> "GaussianDenoiser":
        """Fit mean and (unbiased) covariance of ``data`` ``[n, *shape]`` (n >= 2)."""
        y = as_points(data, "data", dtype=torch.float64)
        if y.shape[0] < 2:
            raise ValueError("data: at least 2 points are needed to fit a covariance")
        flat = y.reshape(y.shape[0], -1)
        return cls(y.mean(0), torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1]), rank=rank, dtype=dtype)
