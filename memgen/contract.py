"""The one contract every denoiser in memgen honours, and the views derived from it.

A :class:`Denoiser` is a ``torch.nn.Module`` whose ``forward(x, sigma)`` returns the x0-estimate
``D(x, sigma) ≈ E[y | x]`` for the canonical noise ``x = y + sigma * eps`` (``x`` of shape
``[B, *shape]``, ``sigma`` a float or a ``[B]`` tensor). From ``D`` alone follow

* score:     ``grad log p_sigma(x) = (D - x) / sigma^2``   (Tweedie)
* eps:       ``eps_hat = (x - D) / sigma``
* velocity:  ``dx/dsigma = (x - D) / sigma``                (probability-flow ODE)

Optional capabilities: models that are mixtures over training points expose
``posterior(x, sigma, topk=None) -> Posterior`` (weights of the training points and their entropy).
Metrics ask ``supports_posterior(model)``; they never test the model's class. A model whose ``D - x``
cancels in floating point where the score is not small (a smoothed denoiser as sigma -> 0: ``D - x`` is
``O(sigma^2)``) exposes ``direct_score(x, sigma)``, the score computed without forming ``D - x``;
:func:`score` uses it where it exists.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .checks import as_batch, as_sigma, as_tensor


class Denoiser(torch.nn.Module):
    """Base class: subclasses implement ``forward(x, sigma) -> D(x, sigma)``.

    Calling a denoiser with a numpy array returns a numpy array (same dtype as the model's output).
    ``event_shape`` (the shape of one sample) is ``None`` when any shape is accepted.
    """

    event_shape: tuple | None = None

    def __call__(self, x, sigma, *args, **kwargs):
        if isinstance(x, np.ndarray):
            out = super().__call__(as_tensor(x, "x"), sigma, *args, **kwargs)
            return out.detach().cpu().numpy()
        return super().__call__(x, sigma, *args, **kwargs)

    def inputs(self, x, sigma, dtype: torch.dtype | None = None):
        """Validate and convert ``(x, sigma)``: returns ``x`` as ``[B, *shape]`` and sigma as ``[B]``."""
        x = as_batch(x, "x", event_shape=self.event_shape, dtype=dtype)
        s = as_sigma(sigma, x.shape[0], dtype=x.dtype, device=x.device)
        return x, s


@dataclass
class Posterior:
    """Posterior over training points at ``(x, sigma)``: ``w_i ∝ exp(-||x - y_i||^2 / (2 sigma^2))``.

    ``weights`` is ``[B, n]`` (all points) or ``[B, k]`` with ``indices`` ``[B, k]`` (top-k, largest first).
    ``entropy`` ``H = -sum_i w_i log w_i`` is always over ALL n points; ``exp(H)`` is the effective
    number of contributing training points. ``log_normalizer`` is ``log sum_i exp(logit_i)`` of the
    logits ``-||x - y_i||^2 / (2 sigma^2)``.
    """

    weights: torch.Tensor
    entropy: torch.Tensor
    log_normalizer: torch.Tensor
    indices: torch.Tensor | None = None

    @property
    def effective_number(self) -> torch.Tensor:
        """``exp(H)``: 1 when one training point dominates, n when all contribute equally."""
        return self.entropy.exp()


def model_device(model) -> torch.device:
    """Where a model computes: the device of its first parameter or buffer (CPU for anything else)."""
    if isinstance(model, torch.nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):     # the first one only: no walk of the tree
            return t.device
    return torch.device("cpu")


def supports_posterior(model) -> bool:
    """Whether ``model`` exposes the optional ``posterior(x, sigma, topk=None)`` capability."""
    return callable(getattr(model, "posterior", None))


def batchwise(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample ``v`` ``[B]`` shaped ``[B, 1, ..., 1]`` to broadcast against ``x`` ``[B, *shape]``."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _inputs(x, sigma):
    """Validated ``(x, sigma)``: ``x`` as a batch tensor, ``sigma`` as ``[B]`` of its dtype and device."""
    x = as_batch(x, "x", dtype=x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else None)
    return x, as_sigma(sigma, x.shape[0], dtype=x.dtype, device=x.device)


def _view(model, x, sigma):
    """Validated ``(x, D(x, sigma), sigma broadcast to x)`` for the views below (``x`` as a tensor)."""
    x, s = _inputs(x, sigma)
    return x, torch.as_tensor(model(x, s)).to(x.dtype), batchwise(s, x)


def _like(x, out: torch.Tensor):
    """numpy in, numpy out (as :class:`Denoiser` calls)."""
    return out.detach().cpu().numpy() if isinstance(x, np.ndarray) else out


def score(model, x, sigma):
    """Score ``(D(x, sigma) - x) / sigma^2`` of the noisy density implied by the denoiser (Tweedie), or the
    model's ``direct_score(x, sigma)`` where it has one (module docstring)."""
    if callable(getattr(model, "direct_score", None)):
        xt, s = _inputs(x, sigma)
        return _like(x, torch.as_tensor(model.direct_score(xt, s)).to(xt.dtype))
    xt, den, s = _view(model, x, sigma)
    return _like(x, (den - xt) / s ** 2)


def eps(model, x, sigma):
    """Noise prediction ``(x - D(x, sigma)) / sigma``."""
    xt, den, s = _view(model, x, sigma)
    return _like(x, (xt - den) / s)


def velocity(model, x, sigma):
    """Probability-flow velocity ``dx/dsigma = (x - D(x, sigma)) / sigma`` (equal to eps in this form)."""
    return eps(model, x, sigma)
