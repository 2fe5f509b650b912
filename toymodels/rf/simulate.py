"""Simulated training of the random-features score: gradient descent or Adam, torch GEMMs.

One step on the training points ``X`` (n x d), as the authors do: draw fresh noise ``xi`` (n x d),
``x_t = exp(-t) X + sqrt(Delta) xi``, ``Phi = f(x_t W^T / sqrt d)`` (n x p), residual
``R = sqrt(Delta) Phi A^T / sqrt(p) + xi`` and the exact gradient of that step's loss
``||R||^2 / (n d)`` (+ the optional ridge ``Delta ridge ||A||^2 / (d p)``):

    ``grad = 2 sqrt(Delta) R^T Phi / (n d sqrt p) + 2 Delta ridge A / (d p)``.

Gradient descent: ``A <- A - lr grad`` with ``lr = dtau d^2`` (the time convention of dynamics.py,
``tau = k lr / d^2``). Adam: the usual bias-corrected moments, ``A <- A - adam_lr m_hat/(sqrt(v_hat) + eps)``
(Adam is invariant to the scale of the gradient, so its step is its own); its times are reported as
``k dtau``, the gradient-descent time of the same number of steps. Its expected gradient is the gradient of
the exact loss, so the mean of A under gradient descent follows ``ClosedForm.curves(discrete=True)``.

``noise`` may instead be a fixed tensor ``[M, n, d]``: every step then uses all M draws (full-batch
descent on the Monte Carlo loss whose matrices ``rf_matrices(..., method='mc', noise=...)`` returns),
which makes the run deterministic.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_points, as_tensor, non_negative, positive
from memgen.noise import ou_delta
from memgen.progress import progress_bar
from memgen.threads import cpu_threads

from .activations import get_activation

OPTIMIZERS = ("gd", "adam")


def default_dtau(psi_p: float, t: float) -> float:
    """The authors' step: lr = 1e-2 d / Delta_t without the 1/sqrt(p) factor, i.e. ``dtau = 1e-2 psi_p / Delta_t``.

    (Both make one step multiply the error of mode lambda by ``1 - 2e-2 lambda``.)
    """
    return 1e-2 * positive(psi_p, "psi_p") / ou_delta(positive(t, "t"))


def simulate(X, W, t: float, *, tau, activation="tanh", optimizer: str = "gd", dtau: float | None = None,
             A0=None, ridge: float = 0.0, noise="fresh", seed: int = 0, evaluate=None,
             adam_lr: float = 1e-3, betas=(0.9, 0.999), adam_eps: float = 1e-8, dtype: torch.dtype = torch.float64,
             threads: int | None = 1, progress: bool = True) -> dict:
    """Train ``A`` and record it (or ``evaluate(A)``) at the times ``tau``.

    Args:
        X: training points ``[n, d]``; W: features ``[p, d]``; t: OU time (> 0).
        tau: increasing record times (units of dynamics.py); the run stops at the last.
        optimizer: ``'gd'`` or ``'adam'``. dtau: time per step (default :func:`default_dtau`).
        adam_lr, betas, adam_eps: Adam's step size (on A) and constants.
        A0: initial ``A`` (d x p, default 0). ridge: see dynamics.py.
        noise: ``'fresh'`` (new draws every step from ``seed``) or fixed draws ``[M, n, d]``.
        evaluate: ``callable(A: numpy d x p) -> dict`` called at every record time (e.g.
            :class:`toymodels.rf.Losses`); without it the parameters themselves are returned.
        dtype: torch dtype of the run.
        threads: torch threads during the run (restored after; 1 is fastest for these small GEMMs on a
            shared CPU), None or 0 to leave the setting alone (:func:`memgen.threads.cpu_threads`).
    Returns:
        ``{'tau': recorded times, 'steps': their step numbers, 'records': list of dicts or A arrays,
        'A': final A}``; with ``evaluate``, each key of its dict also as a numpy array.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    t, ridge = positive(t, "t"), non_negative(ridge, "ridge")
    Xt = as_points(X, "X", dtype=dtype)
    Wt = as_points(W, "W", dtype=dtype)
    if Xt.dim() != 2 or Wt.dim() != 2 or Xt.shape[1] != Wt.shape[1]:
        raise ValueError(f"X, W: expected [n, d] and [p, d], got {tuple(Xt.shape)} and {tuple(Wt.shape)}")
    n, d = Xt.shape
    p = Wt.shape[0]
    f = get_activation(activation)
    delta = ou_delta(t)
    dtau = default_dtau(p / d, t) if dtau is None else positive(dtau, "dtau")
    times = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    if times.ndim != 1 or (np.diff(times) < 0).any() or (times < 0).any():
        raise ValueError("tau: expected increasing record times >= 0")
    steps = np.unique(np.round(times / dtau).astype(np.int64))
    lr = dtau * d * d
    A = torch.zeros(d, p, dtype=dtype) if A0 is None else as_tensor(A0, "A0", dtype=dtype).clone()
    if A.shape != (d, p):
        raise ValueError(f"A0: expected shape ({d}, {p}), got {tuple(A.shape)}")
    if isinstance(noise, str):
        if noise != "fresh":
            raise ValueError(f"noise: expected 'fresh' or a tensor [M, n, d], got {noise!r}")
        gen = torch.Generator().manual_seed(int(seed))
        fixed = None
    else:
        fixed = as_tensor(noise, "noise", dtype=dtype)
        if fixed.dim() != 3 or tuple(fixed.shape[1:]) != (n, d):
            raise ValueError(f"noise: expected shape [M, {n}, {d}], got {tuple(fixed.shape)}")
        fixed = fixed.reshape(-1, d)
    Xrep = Xt if fixed is None else Xt.repeat(fixed.shape[0] // n, 1)
    WT = Wt.T / math.sqrt(d)
    scale = 2 * math.sqrt(delta) / (Xrep.shape[0] * d * math.sqrt(p))
    m = torch.zeros_like(A)
    v = torch.zeros_like(A)
    records = []
    bar = progress_bar(total=int(steps[-1]), enabled=progress, desc=f"RF {optimizer}", mininterval=1.0)
    with cpu_threads(threads or 0), bar:
        k = 0
        for target in steps:
            while k < target:
                xi = torch.randn(n, d, generator=gen, dtype=dtype) if fixed is None else fixed
                phi = f((math.exp(-t) * Xrep + math.sqrt(delta) * xi) @ WT)
                resid = (math.sqrt(delta) / math.sqrt(p)) * (phi @ A.T) + xi
                grad = scale * (resid.T @ phi)
                if ridge:
                    grad += (2 * delta * ridge / (d * p)) * A
                k += 1
                if optimizer == "gd":
                    A -= lr * grad
                else:
                    m.mul_(betas[0]).add_(grad, alpha=1 - betas[0])
                    v.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
                    A -= adam_lr * (m / (1 - betas[0] ** k)) / ((v / (1 - betas[1] ** k)).sqrt() + adam_eps)
                bar.update(1)
            a = A.numpy().copy()
            records.append(evaluate(a) if evaluate is not None else a)
    out = {"tau": steps * dtau, "steps": steps, "records": records, "A": A.numpy(), "dtau": dtau, "lr": lr}
    if evaluate is not None and records:
        for key in records[0]:
            out[key] = np.array([r[key] for r in records])
    return out
