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

import numpy as np
import torch

from memgen.checks import integer, non_negative
from memgen.contract import Denoiser, Posterior, batchwise
from memgen.pairwise import DEFAULT_BUDGET, centred_summary, training_points

from . import _reusing_sampler
from ._torch import needs_grad, streaming_posterior

NUMBA_MAX_DIM = 8
"""``kernel='auto'`` uses the pruned kernel on CPU up to this dimension, the GEMM kernel above.

In low dimension the fused numba kernel computes distances by exact differences (no cancellation),
allocates nothing per chunk and vectorizes its exponentials (:mod:`toymodels.empirical._vector_exp`); the pruned
kernel (:mod:`toymodels.empirical._pruned`) adds a KD-tree that skips, with a certified bound, the pairs
whose weight is below float64 rounding, and falls back to the fused kernel for the queries where that
does not pay (benchmarks/RESULTS.md); at large sigma it first answers the queries whose certified
Taylor series over the training set is exact to 1e-13 (:mod:`toymodels.empirical._far_series`)."""

KERNELS = ("auto", "torch", "numba", "pruned")


def compute_dtype(data_dtype, dtype) -> torch.dtype:
    """The dtype of the computation: ``dtype`` if given (float32 or float64), else float64 for float64
    data and float32 for anything else (numpy's and torch's habit of following the data)."""
    if dtype is None:
        return torch.float64 if data_dtype in (torch.float64, np.float64) else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected None, torch.float32 or torch.float64, got {dtype!r}")
    return dtype


class EmpiricalDenoiser(Denoiser):
    """``D*(x, sigma) = sum_i softmax_i(-||x - y_i||^2 / (2 sigma^2)) y_i`` over the training set.

    Args:
        train: training points ``[n, *shape]``: a tensor, or a numpy array (a memory-mapped ``.npy``,
            ``np.load(path, mmap_mode='r')``, is streamed from disk chunk by chunk, so n may exceed RAM).
        dtype: computation dtype, ``torch.float32`` or ``torch.float64``; default: float64 for float64
            data, float32 otherwise.
        budget: bytes one call may allocate beyond its inputs and output (default 64 MiB).
        kernel: ``'auto'`` (``'pruned'`` for d <= 8 on CPU, else ``'torch'``), ``'torch'`` (streamed
            GEMMs, any d, any device), ``'numba'`` (fused loops, CPU) or ``'pruned'`` (numba plus a
            KD-tree that skips pairs of weight below float64 rounding, and a far-field series at large
            sigma, both with certified bounds; CPU). A call with autograd on and ``x`` or ``sigma``
            requiring grad takes ``'torch'`` whatever the kernel, so gradients are those of ``D*``.

    The training set is kept as given (no copy): chunks are centred on the stored training mean as they
    are read, which keeps the GEMM expansion of the distances accurate in float32 for uncentred data.
    """

    def __init__(self, train, *, dtype: torch.dtype | None = None, budget: int = DEFAULT_BUDGET,
                 kernel: str = "auto"):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {KERNELS}, got {kernel!r}")
        self.budget = integer(budget, "budget")
        self.kernel = kernel
        y, self.event_shape = training_points(train)
        dtype = compute_dtype(y.dtype, dtype)
        summary = self._summary(y, dtype)
        self.array = y if isinstance(y, np.ndarray) else None
        self.register_buffer("points", None if self.array is not None else y)
        self.register_buffer("center", summary.center.to(dtype))
        self.register_buffer("sqnorm", summary.sqnorm.to(dtype))
        self.radius = summary.radius

    def _summary(self, y, dtype):
        """Centre, centred squared norms and radius of the stored points (:func:`memgen.pairwise.centred_summary`)."""
        return centred_summary(y, dtype=dtype)

    @property
    def n(self) -> int:
        return self.sqnorm.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.center.dtype

    @property
    def store(self):
        """The ``[n, d]`` training points as stored: a tensor, or the caller's numpy array."""
        return self.array if self.array is not None else self.points

    @property
    def train_points(self):
        """The training points ``[n, *shape]`` (the caller's data, not a copy). (Not ``train``: that is
        :meth:`torch.nn.Module.train`, which ``.eval()`` calls.)"""
        return self.store.reshape(self.n, *self.event_shape)

    def _lowdim_kernel(self) -> str | None:
        """``'numba'`` or ``'pruned'`` when the fused CPU kernels compute the mean, else None (torch)."""
        if self.kernel == "auto":
            cpu = self.center.device.type == "cpu"
            return "pruned" if cpu and self.center.shape[0] <= NUMBA_MAX_DIM else None
        return self.kernel if self.kernel in ("numba", "pruned") else None

    def _stats(self, x: torch.Tensor, sigma: torch.Tensor, **kw) -> dict:
        """Posterior statistics for validated ``x`` [B, *shape] and sigma [B] (see ``streaming_posterior``)."""
        flat = x.reshape(x.shape[0], -1).to(self.center.device)
        sigma = sigma.to(self.center.device)
        # autograd takes torch's operations whatever the kernel: the numba kernels read plain arrays
        lowdim = None if kw or needs_grad(flat, sigma) else self._lowdim_kernel()
        if lowdim is not None:
            if self.center.device.type != "cpu":
                raise ValueError(f"kernel={lowdim!r} runs on CPU tensors only; use kernel='torch' on GPU")
            y = self.array if self.array is not None else self.points.detach().numpy()
            args = (flat.detach().numpy(), y)
            rest = (self.center.double().numpy(), self.radius, sigma.detach().numpy())
            if lowdim == "pruned":
                from ._pruned import build_tree, pruned_posterior
                if getattr(self, "_tree", None) is None:
                    self._tree = build_tree(y)
                out = pruned_posterior(*args, self._tree, *rest)
            else:
                from ._numba import numba_posterior
                out = numba_posterior(*args, *rest)
            return {k: torch.from_numpy(v).to(self.dtype) for k, v in out.items()}
        return streaming_posterior(flat, self.store, self.center, self.sqnorm, self.radius, sigma,
                                   budget=self.budget, **kw)

    def _mean(self, x, sigma):
        return self._stats(x, sigma)["mean"].reshape(x.shape)

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma, dtype=self.dtype)
        return self._mean(x, s)

    def _posterior(self, x, sigma, topk):
        if topk is None:
            st = self._stats(x, sigma, all_weights=True)
            return Posterior(st["weights"], st["entropy"], st["log_normalizer"])
        st = self._stats(x, sigma, topk=integer(topk, "topk"))
        return Posterior(st["topk_weights"], st["entropy"], st["log_normalizer"], st["topk_indices"])

    def posterior(self, x, sigma, topk: int | None = None) -> Posterior:
        """Weights of the training points at ``(x, sigma)``: all ``[B, n]`` or the top-k with indices."""
        x, s = self.inputs(x, sigma, dtype=self.dtype)
        return self._posterior(x, s, topk)

    def sample_reusing(self, noise, sigmas, **kw):
        """Heun samples that skip full passes once the posterior has collapsed
        (:func:`toymodels.empirical._reusing_sampler.sample_reusing`; what is certified is said there).
        Only the plain empirical denoiser: a subclass with its own ``forward`` (:class:`SmoothedDenoiser`)
        raises ``TypeError``."""
        if type(self).forward is not EmpiricalDenoiser.forward:
            raise TypeError(f"model: expected a toymodels.EmpiricalDenoiser, got {type(self).__name__}")
        return _reusing_sampler.sample_reusing(self, noise, sigmas, **kw)


class SmoothedDenoiser(EmpiricalDenoiser):
    """``D_delta(x, sigma) = (delta^2 x + sigma^2 D*(x, sqrt(sigma^2 + delta^2))) / (sigma^2 + delta^2)``.

    The exact denoiser of the training set broadened by ``N(0, delta^2 I)`` (Kaiser & Kollmann's
    error-prone model). Same arguments as :class:`EmpiricalDenoiser`, plus ``delta >= 0``.
    """

    def __init__(self, train, delta: float, **kw):
        super().__init__(train, **kw)
        self.delta = non_negative(delta, "delta")

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma, dtype=self.dtype)
        if self.delta == 0:
            return self._mean(x, s)
        d2 = self.delta ** 2
        s2 = batchwise(s ** 2, x)
        inner = self._mean(x, (s ** 2 + d2).sqrt())
        return (d2 * x.to(inner.device) + s2.to(inner.device) * inner) / (s2.to(inner.device) + d2)

    def direct_score(self, x, sigma):
        """``(D*(x, s) - x) / s^2`` with ``s^2 = sigma^2 + delta^2``: the score of the training set broadened by
        ``N(0, (sigma^2 + delta^2) I)``, equal to ``(D_delta - x) / sigma^2`` without forming ``D_delta - x``,
        which is ``O(sigma^2)`` and cancels in floating point as sigma -> 0 (:func:`memgen.score` uses this)."""
        x, s = self.inputs(x, sigma, dtype=self.dtype)
        s2 = s ** 2 + self.delta ** 2
        inner = self._mean(x, s2.sqrt())
        return (inner - x.to(inner.device)) / batchwise(s2, x).to(inner.device)

    def posterior(self, x, sigma, topk: int | None = None) -> Posterior:
        """The empirical posterior at ``sqrt(sigma^2 + delta^2)``."""
        x, s = self.inputs(x, sigma, dtype=self.dtype)
        return self._posterior(x, (s ** 2 + self.delta ** 2).sqrt(), topk)
