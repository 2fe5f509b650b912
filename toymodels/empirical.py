"""The exact empirical-score (optimal, fully memorizing) denoiser and its error-prone smoothing.

Empirical denoiser of training points ``y_1..y_n``:
    ``D*(x, sigma) = sum_i w_i y_i``,  ``w = softmax_i(-||x - y_i||^2 / (2 sigma^2))``,
the exact posterior mean when the data distribution is the training set itself. Exact at every sigma:
as sigma -> 0 it tends to the nearest training point, as sigma -> inf to the training mean.

Smoothed, error-prone denoiser (Kaiser & Kollmann): the exact optimal denoiser of the training
data broadened by ``N(0, delta^2 I)``:
    ``D_delta(x, sigma) = (delta^2 x + sigma^2 D*(x, sigma_t)) / (sigma^2 + delta^2)``,
    ``sigma_t = sqrt(sigma^2 + delta^2)``;
its posterior over training points is the empirical one at ``sigma_t``. ``delta = 0`` is ``D*``.
"""
from __future__ import annotations

import torch

from memgen.checks import as_points, integer, non_negative
from memgen.contract import Denoiser, Posterior
from memgen.pairwise import DEFAULT_BUDGET, squared_norms

from .posterior_torch import streaming_posterior

NUMBA_MAX_DIM = 8
"""``kernel='auto'`` uses the fused numba kernel on CPU up to this dimension, the GEMM kernel above.

In low dimension the fused kernel computes distances by exact differences (no cancellation) and
allocates nothing per chunk; it is as fast as the GEMM kernel on a quiet 2-core machine and about 3x
faster when the memory bus is shared (benchmarks/RESULTS.md)."""

KERNELS = ("auto", "torch", "numba")


class EmpiricalDenoiser(Denoiser):
    """``D*(x, sigma) = sum_i softmax_i(-||x - y_i||^2 / (2 sigma^2)) y_i`` over the training set.

    Args:
        train: training points ``[n, *shape]`` (tensor or numpy).
        dtype: computation dtype, ``torch.float32`` (default) or ``torch.float64``.
        budget: bytes one call may allocate beyond its inputs (streaming kernel; default 64 MiB).
        kernel: ``'auto'`` (numba for d <= 8 on CPU, else torch), ``'torch'`` or ``'numba'``.

    The data are stored centred on their mean (which is added back), which keeps the GEMM
    expansion of the distances accurate in float32 for uncentred data.
    """

    def __init__(self, train, *, dtype: torch.dtype = torch.float32, budget: int = DEFAULT_BUDGET,
                 kernel: str = "auto"):
        super().__init__()
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
        y = as_points(train, "train", dtype=dtype)
        self.event_shape = tuple(y.shape[1:])
        flat = y.reshape(y.shape[0], -1)
        center = flat.mean(0, dtype=torch.float64).to(dtype)
        self.register_buffer("center", center)
        self.register_buffer("points", flat - center)
        self.register_buffer("sqnorm", squared_norms(self.points))
        self.budget = integer(budget, "budget")
        self.kernel = kernel

    @property
    def n(self) -> int:
        return self.points.shape[0]

    @property
    def train(self) -> torch.Tensor:
        """The training points ``[n, *shape]``."""
        return (self.points + self.center).reshape(self.n, *self.event_shape)

    def _use_numba(self) -> bool:
        if self.kernel == "auto":
            return self.points.device.type == "cpu" and self.points.shape[1] <= NUMBA_MAX_DIM
        return self.kernel == "numba"

    def _stats(self, x: torch.Tensor, sigma: torch.Tensor, **kw) -> dict:
        """Posterior statistics for validated ``x`` [B, *shape] and sigma [B] (centred coordinates)."""
        xc = x.reshape(x.shape[0], -1).to(self.points.device) - self.center
        sigma = sigma.to(self.points.device)
        if not kw and self._use_numba():
            from .posterior_numba import numba_posterior
            if self.points.device.type != "cpu":
                raise ValueError("kernel='numba' runs on CPU tensors only; use kernel='torch' on GPU")
            out = numba_posterior(xc.cpu().numpy(), self.points.cpu().numpy(), sigma.cpu().numpy())
            return {k: torch.from_numpy(v).to(self.points.dtype) for k, v in out.items()}
        return streaming_posterior(xc, self.points, self.sqnorm, sigma, budget=self.budget, **kw)

    def _mean(self, x, sigma):
        return (self._stats(x, sigma)["mean"] + self.center).reshape(x.shape)

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma, dtype=self.points.dtype)
        return self._mean(x, s)

    def _posterior(self, x, sigma, topk):
        topk = None if topk is None else integer(topk, "topk")
        if topk is None:
            st = self._stats(x, sigma, all_weights=True)
            w = torch.exp(st["logits"] - st["log_normalizer"].unsqueeze(1))
            return Posterior(w, st["entropy"], st["log_normalizer"])
        st = self._stats(x, sigma, topk=int(topk))
        w = torch.exp(st["topk_logits"] - st["log_normalizer"].unsqueeze(1))
        return Posterior(w, st["entropy"], st["log_normalizer"], st["topk_indices"])

    def posterior(self, x, sigma, topk: int | None = None) -> Posterior:
        """Weights of the training points at ``(x, sigma)``: all ``[B, n]`` or the top-k with indices."""
        x, s = self.inputs(x, sigma, dtype=self.points.dtype)
        return self._posterior(x, s, topk)


class SmoothedDenoiser(EmpiricalDenoiser):
    """``D_delta(x, sigma) = (delta^2 x + sigma^2 D*(x, sqrt(sigma^2 + delta^2))) / (sigma^2 + delta^2)``.

    The exact denoiser of the training set broadened by ``N(0, delta^2 I)`` (Kaiser & Kollmann's
    error-prone model). Same arguments as :class:`EmpiricalDenoiser`, plus ``delta >= 0``.
    """

    def __init__(self, train, delta: float, **kw):
        super().__init__(train, **kw)
        self.delta = non_negative(delta, "delta")

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma, dtype=self.points.dtype)
        if self.delta == 0:
            return self._mean(x, s)
        d2 = self.delta ** 2
        s2 = (s ** 2).reshape(-1, *([1] * (x.dim() - 1)))
        inner = self._mean(x, (s ** 2 + d2).sqrt())
        return (d2 * x.to(inner.device) + s2.to(inner.device) * inner) / (s2.to(inner.device) + d2)

    def posterior(self, x, sigma, topk: int | None = None) -> Posterior:
        """The empirical posterior at ``sqrt(sigma^2 + delta^2)``."""
        x, s = self.inputs(x, sigma, dtype=self.points.dtype)
        return self._posterior(x, (s ** 2 + self.delta ** 2).sqrt(), topk)
