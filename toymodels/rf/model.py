"""The random-features score at one OU time, and its wrapper behind the Denoiser contract.

Score (OU form, Bonnaire et al.): ``s_A(x) = (A / sqrt(p)) f(W x / sqrt(d))``, ``W`` p x d i.i.d.
N(0, 1) drawn from a seed and frozen, ``A`` d x p trained (see dynamics.py for the closed form).

Canonical conversion (docs/closed_forms.md): OU time t has scale ``s = exp(-t)`` and ``sigma^2 = exp(2t) - 1``;
``x_ou = s x_ve``, the VE score is ``s * s_A(s * x_ve)``, and
``D(x_ve, sigma) = x_ve + sigma^2 s s_A(s x_ve)``.
The model is trained at one t only: :class:`RFDenoiser` answers at ``sigma = sigma_t`` (relative
tolerance 1e-6) and raises ``ValueError`` at any other noise level rather than guess.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_batch, as_points, as_tensor, integer, positive
from memgen.contract import Denoiser
from memgen.noise import ou_delta, ou_to_ve, ve_to_ou

from .activations import get_activation
from .dynamics import ClosedForm, Losses
from .matrices import _covariance, rf_matrices


class RFScore(torch.nn.Module):
    """``s_A(x) = (A/sqrt p) f(W x/sqrt d)`` at OU time ``t``.

    Args:
        d: data dimension; p: number of features; t: OU time (> 0).
        activation: ``'tanh'`` (default), ``'relu'``, ``'erf'`` or an Activation.
        seed: seed of ``W`` (``torch.Generator``); W and A may also be given.
        dtype: float64 (default) or float32.
    """

    def __init__(self, d: int, p: int, t: float, *, activation="tanh", seed: int = 0, W=None, A=None,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        d, p = integer(d, "d"), integer(p, "p")
        self.t = positive(t, "t")
        self.activation = get_activation(activation)
        if W is None:
            W = torch.randn(p, d, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
        W = as_tensor(W, "W", dtype=dtype)
        if tuple(W.shape) != (p, d):
            raise ValueError(f"W: expected shape ({p}, {d}), got {tuple(W.shape)}")
        A = torch.zeros(d, p, dtype=dtype) if A is None else as_tensor(A, "A", dtype=dtype)
        if tuple(A.shape) != (d, p):
            raise ValueError(f"A: expected shape ({d}, {p}), got {tuple(A.shape)}")
        self.register_buffer("W", W)
        self.register_buffer("A", A)

    @property
    def d(self) -> int:
        return self.W.shape[1]

    @property
    def p(self) -> int:
        return self.W.shape[0]

    @property
    def psi_p(self) -> float:
        return self.p / self.d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``f(W x / sqrt d)`` for a batch ``[B, d]`` -> ``[B, p]``."""
        return self.activation(x @ self.W.T / math.sqrt(self.d))

    def forward(self, x) -> torch.Tensor:
        """The OU score ``s_A(x)`` of a batch ``[B, d]`` of noisy points at time t."""
        x = as_batch(x, "x", event_shape=(self.d,), dtype=self.W.dtype)
        return self.features(x) @ self.A.T / math.sqrt(self.p)

    def matrices(self, X, **kw):
        """``U, V`` of the training points ``X`` (see :func:`toymodels.rf.rf_matrices`)."""
        return rf_matrices(self.W.double().numpy(), X, self.t, activation=self.activation, **kw)

    def fit(self, X, tau: float = math.inf, *, ridge: float = 0.0, **kw) -> "RFScore":
        """Set ``A`` to its gradient-flow value at time ``tau`` (default: the end point), from the current A.

        ``tau`` in the units of dynamics.py; ``kw`` go to :meth:`matrices`. Returns ``self``.
        """
        m = self.matrices(X, **kw)
        flow = ClosedForm(Losses(m.U, m.V, self.t), A0=self.A.double().numpy(), ridge=ridge)
        self.A.copy_(torch.as_tensor(flow.A(tau), dtype=self.A.dtype))
        return self


class RFDenoiser(Denoiser):
    """The RF score behind the Denoiser contract: ``D(x, sigma_t) = x + sigma_t^2 s s_A(s x)``, ``s = exp(-t)``.

    Only ``sigma = sigma_t = sqrt(exp(2t) - 1)`` is answered (relative tolerance ``rtol``); other
    noise levels raise ``ValueError`` (the model is trained at one diffusion time).
    """

    def __init__(self, score: RFScore, *, rtol: float = 1e-6):
        super().__init__()
        if not isinstance(score, RFScore):
            raise TypeError(f"score: expected an RFScore, got {type(score).__name__}")
        self.score_model = score
        self.event_shape = (score.d,)
        scale, sigma = ou_to_ve(score.t)
        self.scale, self.sigma_t = float(scale), float(sigma)
        self.rtol = positive(rtol, "rtol")

    def forward(self, x, sigma) -> torch.Tensor:
        x, s = self.inputs(x, sigma, dtype=self.score_model.W.dtype)
        bad = (s - self.sigma_t).abs() > self.rtol * self.sigma_t
        if bool(bad.any()):
            got = float(s[bad][0])
            raise ValueError(f"sigma: this random-features model is trained at sigma_t = {self.sigma_t:.6g}"
                             f" (OU t = {self.score_model.t:g}); got sigma = {got:.6g}"
                             f" (OU t = {float(ve_to_ou(got)):.6g})")
        score_ve = self.scale * self.score_model(self.scale * x)
        return x + self.sigma_t ** 2 * score_ve


def true_score_gaussian(x, t: float, cov=1.0) -> torch.Tensor:
    """Exact OU score of Gaussian data ``N(0, cov)`` at time t: ``-(exp(-2t) cov + Delta I)^-1 x``."""
    t = positive(t, "t")
    x = as_points(x, "x", dtype=torch.float64)
    d = x.shape[1]
    C = math.exp(-2 * t) * _covariance(cov, d) + ou_delta(t) * np.eye(d)
    return -x @ torch.as_tensor(np.linalg.inv(C))
