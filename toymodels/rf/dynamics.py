"""Exact gradient-flow training curves of the random-features score, from one eigendecomposition of U.

Time convention (docs/rf_theory.md, "the authors' units"): ``tau = k eta / d^2`` for k steps of gradient
descent with learning rate eta on ``A`` (the model ``s_A(x) = (A/sqrt p) f(W x/sqrt d)`` with the
1/sqrt(p) factor), i.e. gradient flow ``dA/dtau = -d^2 dL/dA``. Writing ``A~ = A/sqrt(p)``:

    ``L_train(A) = 1 + (Delta/d) Tr(A~ U A~^T) + (2 sqrt(Delta)/d) Tr(A~ V)``
    ``dA~/dtau = -(2 Delta/psi_p) (A~ (U + ridge I) + Delta^-1/2 V^T)``

so in the eigenbasis ``U + ridge I = Q diag(lambda) Q^T`` each column of ``B = A~ Q`` evolves alone:

    ``B_k(tau) = e_k B_k(0) + f_k Y_k``,   ``e_k = exp(-c lambda_k tau)``,
    ``f_k = (1 - e_k)/lambda_k`` (-> c tau at lambda_k = 0),   ``c = 2 Delta/psi_p``,   ``Y = -Delta^-1/2 (Q^T V)^T``.

The losses are quadratic in B, so all of them at T times cost a few T x p x p products:
train with (U, V), test with population or held-out matrices (U_test, V_test), and for Gaussian data
the score error ``(1/d) E||s_A(x_t) + C_t^-1 x_t||^2``
``= (1/d)[Tr(A~ U_test A~^T) + (2/sqrt Delta) Tr(A~ V_test) + Tr C_t^-1]``
(so ``L_test = 1 + Delta (score error - Tr C_t^-1 / d)``: denoising score matching).
``ridge`` adds ``(Delta ridge / d) ||A~||^2`` to the training objective (the authors' script uses 1e-3;
docs/rf_theory.md's equations have none); the reported losses never include it.
``discrete=True`` gives plain gradient descent with step ``dtau`` instead: ``e_k = (1 - c lambda_k dtau)^k``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memgen.checks import non_negative, positive
from memgen.noise import ou_delta


def _as_times(tau) -> np.ndarray:
    tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    if tau.ndim != 1 or np.isnan(tau).any() or (tau < 0).any():
        raise ValueError("tau: expected training times >= 0 (inf allowed: the end point)")
    return tau


@dataclass
class Losses:
    """The exact losses of any A for given matrices (train, and test/score error when given).

    Args:
        U, V: training matrices (p x p, p x d).
        t: OU time of the model.
        U_test, V_test: population (or held-out) matrices, for the test loss.
        trace_inv: ``Tr C_t^-1`` of the Gaussian data, for the score error.
    """

    U: np.ndarray
    V: np.ndarray
    t: float
    U_test: np.ndarray | None = None
    V_test: np.ndarray | None = None
    trace_inv: float | None = None

    def __post_init__(self):
        self.t = positive(self.t, "t")
        self.U, self.V = np.asarray(self.U, np.float64), np.asarray(self.V, np.float64)
        p, d = self.V.shape
        if self.U.shape != (p, p):
            raise ValueError(f"U: expected shape ({p}, {p}) to match V {self.V.shape}, got {self.U.shape}")
        if (self.U_test is None) != (self.V_test is None):
            raise ValueError("U_test, V_test: give both or neither")
        if self.U_test is not None:
            self.U_test, self.V_test = np.asarray(self.U_test, np.float64), np.asarray(self.V_test, np.float64)
            if self.U_test.shape != (p, p) or self.V_test.shape != (p, d):
                raise ValueError(f"U_test, V_test: expected shapes ({p}, {p}) and ({p}, {d})")
        if self.trace_inv is not None and self.U_test is None:
            raise ValueError("trace_inv: the score error needs the population matrices U_test, V_test")

    @property
    def delta(self) -> float:
        return ou_delta(self.t)

    @property
    def p(self) -> int:
        return self.V.shape[0]

    @property
    def d(self) -> int:
        return self.V.shape[1]

    def __call__(self, A) -> dict:
        """``{'train', 'test', 'score_error'}`` (those available) of the parameter ``A`` (d x p)."""
        A = np.asarray(A, dtype=np.float64) / math.sqrt(self.p)
        if A.shape != (self.d, self.p):
            raise ValueError(f"A: expected shape ({self.d}, {self.p}), got {A.shape}")
        dl, d = self.delta, self.d
        out = {"train": 1 + dl / d * np.sum((A @ self.U) * A) + 2 * math.sqrt(dl) / d * np.sum(A * self.V.T)}
        if self.U_test is not None:
            quad, lin = np.sum((A @ self.U_test) * A), np.sum(A * self.V_test.T)
            out["test"] = 1 + dl / d * quad + 2 * math.sqrt(dl) / d * lin
            if self.trace_inv is not None:
                out["score_error"] = (quad + 2 / math.sqrt(dl) * lin + self.trace_inv) / d
        return {k: float(v) for k, v in out.items()}


class ClosedForm:
    """Gradient flow (or exact gradient descent) of the RF score from ``A_0``, at any time, no simulation.

    Args:
        losses: a :class:`Losses` (the matrices).
        A0: initial parameter (d x p; default 0, as the authors).
        ridge: weight of the ridge term (see the module docstring).
    """

    def __init__(self, losses: Losses, *, A0=None, ridge: float = 0.0):
        self.losses = L = losses
        self.ridge = non_negative(ridge, "ridge")
        p, d = L.p, L.d
        self.psi_p = p / d
        lam, Q = np.linalg.eigh(L.U)
        self.eigvals, self.Q = lam, Q
        self.rate = 2 * L.delta / self.psi_p  # c
        Vq = Q.T @ L.V  # [p, d]
        self.Y = -(Vq.T) / math.sqrt(L.delta)  # [d, p]
        if A0 is not None and np.shape(A0) != (d, p):
            raise ValueError(f"A0: expected shape ({d}, {p}), got {np.shape(A0)}")
        self.B0 = None if A0 is None else (np.asarray(A0, np.float64) / math.sqrt(p)) @ Q
        # per-mode scalars for the train loss (diagonal in this basis)
        self._tr = {"g11": np.sum(self.Y * self.Y, 0), "h1": np.sum(self.Y * Vq.T, 0)}
        if self.B0 is not None:
            self._tr.update(g00=np.sum(self.B0 ** 2, 0), g01=np.sum(self.B0 * self.Y, 0),
                            h0=np.sum(self.B0 * Vq.T, 0))
        self._te = None
        if L.U_test is not None:
            M = Q.T @ L.U_test @ Q
            Vt = Q.T @ L.V_test
            self._te = {"H11": M * (self.Y.T @ self.Y), "l1": np.sum(self.Y * Vt.T, 0)}
            if self.B0 is not None:
                self._te.update(H00=M * (self.B0.T @ self.B0), H01=M * (self.B0.T @ self.Y),
                                l0=np.sum(self.B0 * Vt.T, 0))

    def _ef(self, tau, discrete: bool, dtau: float | None):
        """``e_k(tau)`` and ``f_k(tau)`` for every time (rows) and mode (columns)."""
        lam = self.eigvals + self.ridge
        if discrete:
            dtau = positive(dtau, "dtau")
            tau = np.round(tau / dtau) * dtau
            e = (1 - self.rate * lam * dtau) ** np.round(tau / dtau)[:, None]
            one_minus = 1 - e
        else:
            e = np.exp(-self.rate * np.outer(tau, lam))
            one_minus = -np.expm1(-self.rate * np.outer(tau, lam))
        tiny = np.abs(lam) < 1e-300
        f = np.where(tiny, self.rate * tau[:, None], one_minus / np.where(tiny, 1.0, lam))
        return e, f

    def A(self, tau: float, *, discrete: bool = False, dtau: float | None = None) -> np.ndarray:
        """The parameter ``A(tau)`` (d x p) of gradient flow (or of gradient descent with step ``dtau``)."""
        e, f = self._ef(_as_times(tau), discrete, dtau)
        B = self.Y * f[0] + (0 if self.B0 is None else self.B0 * e[0])
        return math.sqrt(self.losses.p) * B @ self.Q.T

    def curves(self, tau, *, discrete: bool = False, dtau: float | None = None) -> dict:
        """Train loss, test loss and score error (those available) at every time in ``tau``.

        ``discrete=True``: plain gradient descent with ``round(tau/dtau)`` steps of ``dtau``.
        Returns numpy arrays keyed ``'tau', 'train', 'test', 'score_error'``.
        """
        tau = _as_times(tau)
        e, f = self._ef(tau, discrete, dtau)
        L, lam = self.losses, self.eigvals
        dl, d = L.delta, L.d
        g = self._tr
        quad = (f * f) @ (lam * g["g11"])
        lin = f @ g["h1"]
        if self.B0 is not None:
            quad = quad + (e * e) @ (lam * g["g00"]) + 2 * (e * f) @ (lam * g["g01"])
            lin = lin + e @ g["h0"]
        out = {"tau": tau, "train": 1 + dl / d * quad + 2 * math.sqrt(dl) / d * lin}
        if self._te is not None:
            h = self._te
            quad = np.sum((f @ h["H11"]) * f, 1)
            lin = f @ h["l1"]
            if self.B0 is not None:
                quad = quad + np.sum((e @ h["H00"]) * e, 1) + 2 * np.sum((e @ h["H01"]) * f, 1)
                lin = lin + e @ h["l0"]
            out["test"] = 1 + dl / d * quad + 2 * math.sqrt(dl) / d * lin
            if L.trace_inv is not None:
                out["score_error"] = (quad + 2 / math.sqrt(dl) * lin + L.trace_inv) / d
        return out


def _crossing(tau: np.ndarray, y: np.ndarray, level: float) -> float:
    """First time at which ``y`` reaches ``level`` (from the side it starts on), interpolated in log tau."""
    above = (y >= level) if y[0] < level else (y <= level)
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return math.nan
    i = int(idx[0])
    if i == 0:
        return float(tau[0])
    x0, x1 = math.log(max(tau[i - 1], 1e-300)), math.log(tau[i])
    w = (level - y[i - 1]) / (y[i] - y[i - 1])
    return float(math.exp(x0 + w * (x1 - x0)))


def crossing_times(curves: dict) -> dict:
    """``tau_gen`` and ``tau_mem`` read off loss curves as half-way crossings (the last time must be long
    enough to be final). Compare :func:`toymodels.rf.relaxation_times` (predicted from the spectrum) and
    :mod:`compare.timescales` (read off a trained network's checkpoint series).

    * ``tau_gen``: first time the score error (else the test loss) has made half its drop from its
      initial value to its minimum over the curve: ``E(tau_gen) = (E(0) + min E) / 2``.
    * ``tau_mem``: first time the generalization gap ``L_test - L_train`` reaches half its final value.
    """
    tau = _as_times(curves["tau"])
    key = "score_error" if "score_error" in curves else "test"
    if key not in curves:
        raise ValueError("curves: need test losses (give U_test, V_test) to measure the time scales")
    e = np.asarray(curves[key], dtype=np.float64)
    gap = np.asarray(curves["test"], dtype=np.float64) - np.asarray(curves["train"], dtype=np.float64)
    return {"tau_gen": _crossing(tau, e, 0.5 * (e[0] + e.min())),
            "tau_mem": _crossing(tau, gap, 0.5 * gap[-1]) if gap[-1] > 0 else math.nan,
            "gap_final": float(gap[-1]), "min_" + key: float(e.min())}
