"""Activations of the random-features model and their Gaussian expectations.

Everything the theory needs from an activation ``f`` is a Gaussian expectation at mean ``m`` and
standard deviation ``s`` (``z ~ N(0, 1)``):

* normalized Hermite coefficients ``c_k(m, s) = E[f(m + s z) h_k(z)]``, ``h_k = He_k / sqrt(k!)``
  (probabilists' Hermite polynomials, orthonormal under N(0, 1)); by Mehler's formula, for a pair
  ``(z1, z2)`` of unit Gaussians with correlation ``rho``,
  ``E[f(m1 + s1 z1) f(m2 + s2 z2)] = sum_k rho^k c_k(m1, s1) c_k(m2, s2)``;
* the second moment ``E[f(m + s z)^2]``.

By default they are computed by Gauss-Hermite quadrature (``nodes`` points, exact for polynomials
of degree ``2 nodes - 1``; for tanh at ``s <= 1.2`` 160 nodes reach ~1e-15). ReLU and erf override
them with closed forms (Stein's identity ``E[g(z) He_k(z)] = E[g^(k)(z)]``):

* ReLU: ``c_0 = m Phi(m/s) + s phi(m/s)``, ``c_1 = s Phi(m/s)``,
  ``c_k = s (-1)^k He_{k-2}(m/s) phi(m/s) / sqrt(k!)`` for ``k >= 2``;
  ``E[f^2] = (m^2 + s^2) Phi(m/s) + m s phi(m/s)``.
* erf: with ``c = 1/sqrt(1 + 2 s^2)`` and ``u = sqrt(2) c m``: ``c_0 = erf(c m)``,
  ``c_k = s^k (2c/sqrt(pi)) (sqrt(2) c)^(k-1) (-1)^(k-1) He_{k-1}(u) exp(-u^2/2) / sqrt(k!)``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy import special

DEFAULT_NODES = 160


@lru_cache(maxsize=16)
def gauss_hermite(nodes: int = DEFAULT_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z_a`` and weights ``w_a`` with ``sum_a w_a g(z_a) ≈ E[g(z)]``, ``z ~ N(0, 1)`` (weights sum to 1)."""
    if int(nodes) != nodes or nodes < 2:
        raise ValueError(f"nodes: expected an integer >= 2, got {nodes!r}")
    z, w = special.roots_hermitenorm(int(nodes))
    return z, w / w.sum()


def hermite_table(z: np.ndarray, kmax: int) -> np.ndarray:
    """Normalized Hermite polynomials ``h_k(z) = He_k(z)/sqrt(k!)`` for k = 0..kmax: ``[kmax+1, *z.shape]``.

    Recurrence ``h_{k+1} = (z h_k - sqrt(k) h_{k-1}) / sqrt(k+1)`` (stable for large k).
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.empty((kmax + 1, *z.shape))
    out[0] = 1.0
    if kmax >= 1:
        out[1] = z
    for k in range(1, kmax):
        out[k + 1] = (z * out[k] - math.sqrt(k) * out[k - 1]) / math.sqrt(k + 1)
    return out


class Activation:
    """An activation with its Gaussian expectations; subclasses may override them with closed forms.

    Args:
        name: label used in records and figures.
        numpy_fn: ``f`` on numpy arrays.
        torch_fn: ``f`` on torch tensors.
    """

    closed_form = False

    def __init__(self, name: str, numpy_fn, torch_fn):
        self.name, self._np, self._torch = name, numpy_fn, torch_fn

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    def __call__(self, x):
        """``f(x)`` for a torch tensor (returns a tensor) or an array (returns a numpy array)."""
        if isinstance(x, torch.Tensor):
            return self._torch(x)
        return self._np(np.asarray(x, dtype=np.float64))

    def hermite(self, m, s, kmax: int, *, nodes: int = DEFAULT_NODES) -> np.ndarray:
        """``c_k(m, s) = E[f(m + s z) h_k(z)]`` for k = 0..kmax, shape ``[kmax+1, *broadcast(m, s)]``."""
        return _quadrature_moments(self._np, m, s, kmax, nodes)[0]

    def second_moment(self, m, s, *, nodes: int = DEFAULT_NODES) -> np.ndarray:
        """``E[f(m + s z)^2]`` (shape of ``broadcast(m, s)``)."""
        return _quadrature_moments(self._np, m, s, 0, nodes)[1]

    def moments(self, m, s, kmax: int, *, nodes: int = DEFAULT_NODES) -> tuple[np.ndarray, np.ndarray]:
        """``(c_k(m, s) for k = 0..kmax, E[f(m + s z)^2])``, from one evaluation of f when by quadrature."""
        if self.closed_form:
            return self.hermite(m, s, kmax, nodes=nodes), self.second_moment(m, s, nodes=nodes)
        return _quadrature_moments(self._np, m, s, kmax, nodes)


def _quadrature_moments(fn, m, s, kmax: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite ``sum_a w_a f(m + s z_a) h_k(z_a)`` (C-contiguous ``[kmax+1, ...]``) and ``sum_a w_a f^2``."""
    m, s = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s, np.float64))
    z, w = gauss_hermite(nodes)
    vals = fn(m[..., None] + s[..., None] * z)
    second = (vals * vals) @ w
    vals *= w
    coef = np.tensordot(hermite_table(z, kmax), vals, axes=([1], [vals.ndim - 1]))
    return coef, second


def _relu_np(x):
    return np.maximum(x, 0.0)


class ReLU(Activation):
    """``f(x) = max(x, 0)`` with closed-form Gaussian expectations (see the module docstring)."""

    closed_form = True

    def __init__(self):
        super().__init__("relu", _relu_np, torch.relu)

    def hermite(self, m, s, kmax: int, *, nodes: int = DEFAULT_NODES) -> np.ndarray:
        m, s = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s, np.float64))
        x = m / s
        cdf, pdf = special.ndtr(x), np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        out = np.empty((kmax + 1, *m.shape))
        out[0] = m * cdf + s * pdf
        if kmax >= 1:
            out[1] = s * cdf
        if kmax >= 2:
            he = hermite_table(x, kmax - 2)  # h_j(x) = He_j(x)/sqrt(j!)
            for k in range(2, kmax + 1):
                # He_{k-2}/sqrt(k!) = h_{k-2} / sqrt(k (k-1))
                out[k] = (-1) ** k * s * pdf * he[k - 2] / math.sqrt(k * (k - 1))
        return out

    def second_moment(self, m, s, *, nodes: int = DEFAULT_NODES) -> np.ndarray:
        m, s = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s, np.float64))
        x = m / s
        return (m * m + s * s) * special.ndtr(x) + m * s * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


class Erf(Activation):
    """``f(x) = erf(x)`` with closed-form Hermite coefficients (second moment by quadrature)."""

    closed_form = True

    def __init__(self):
        super().__init__("erf", special.erf, torch.special.erf)

    def hermite(self, m, s, kmax: int, *, nodes: int = DEFAULT_NODES) -> np.ndarray:
        m, s = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(s, np.float64))
        c = 1.0 / np.sqrt(1.0 + 2.0 * s * s)
        u = math.sqrt(2.0) * c * m
        out = np.empty((kmax + 1, *m.shape))
        out[0] = special.erf(c * m)
        if kmax >= 1:
            he = hermite_table(u, kmax - 1)  # He_j(u) = h_j(u) sqrt(j!)
            base = 2.0 * c / math.sqrt(math.pi) * np.exp(-0.5 * u * u)
            for k in range(1, kmax + 1):
                # s^k (sqrt2 c)^(k-1) (-1)^(k-1) He_{k-1}(u) / sqrt(k!) = ... h_{k-1}(u) / sqrt(k)
                out[k] = base * s ** k * (math.sqrt(2.0) * c) ** (k - 1) * (-1) ** (k - 1) * he[k - 1] / math.sqrt(k)
        return out


ACTIVATIONS = {
    "tanh": lambda: Activation("tanh", np.tanh, torch.tanh),
    "relu": ReLU,
    "erf": Erf,
}


def get_activation(activation) -> Activation:
    """An :class:`Activation` from a name (``'tanh'``, ``'relu'``, ``'erf'``) or an existing instance."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]()
    raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)} or an Activation, got {activation!r}")
