"""The noise process in its canonical (EDM, variance-exploding) form and its conversions.

Canonical form: ``x = y + sigma * eps``. A variance-preserving process ``x_vp = s * x_ve`` with
``s = sqrt(alpha_bar)`` is the same process rescaled, with ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``.
Every schedule here is therefore a map ``t -> (scale, sigma)``; metrics and samplers only ever see sigma.

* EDM grid (Karras et al. 2022):
  ``sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``, then 0.
* DDPM linear: ``beta_i`` linear in [beta_1, beta_T], ``alpha_bar_t = prod_{i<=t} (1 - beta_i)``.
* IDDPM cosine: ``alpha_bar(t) = f(t)/f(0)``, ``f(t) = cos((t/T + s)/(1 + s) * pi/2)^2``, betas clipped at 0.999.
* Ornstein-Uhlenbeck time of the random-features theory: ``x_t = exp(-t) x_0 + sqrt(Delta_t) xi``,
  ``Delta_t = 1 - exp(-2t)``, so ``scale = exp(-t)`` and ``sigma^2 = exp(2t) - 1``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .checks import as_values, in_interval, integer, non_negative, positive


def edm_sigmas(steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               *, dtype=torch.float64) -> torch.Tensor:
    """``steps`` decreasing noise levels from ``sigma_max`` to ``sigma_min`` (EDM's rho-spacing), then 0.

    Returns a tensor of length ``steps + 1`` whose last entry is 0 (the sampler's final jump to the data).
    """
    steps = integer(steps, "steps")
    sigma_min, sigma_max, rho = positive(sigma_min, "sigma_min"), positive(sigma_max, "sigma_max"), positive(rho, "rho")
    if sigma_min > sigma_max:
        raise ValueError(f"sigma_min ({sigma_min}) must not exceed sigma_max ({sigma_max})")
    ramp = torch.linspace(0, 1, int(steps), dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)]).to(dtype)


def log_sigmas(num: int = 64, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """``num`` log-spaced noise levels in [sigma_min, sigma_max] (the grid for per-sigma metrics), increasing.

    ``sigma_i = sigma_min (sigma_max / sigma_min)^(i / (num - 1))``; ``num = 1`` gives ``[sigma_min]``.
    """
    num = integer(num, "num")
    sigma_min, sigma_max = positive(sigma_min, "sigma_min"), positive(sigma_max, "sigma_max")
    if sigma_min > sigma_max:
        raise ValueError(f"sigma_min ({sigma_min}) must not exceed sigma_max ({sigma_max})")
    return torch.logspace(math.log10(sigma_min), math.log10(sigma_max), num, dtype=torch.float64)


# --- variance-preserving <-> canonical ------------------------------------------------------------

def vp_to_ve(alpha_bar):
    """``alpha_bar -> (scale, sigma)`` with ``scale = sqrt(alpha_bar)``, ``sigma = sqrt((1-alpha_bar)/alpha_bar)``."""
    a = as_values(alpha_bar, "alpha_bar", lo=0.0, hi=1.0, closed="right")
    return a.sqrt(), _vp_sigma(a)


def _vp_sigma(alpha_bar: torch.Tensor) -> torch.Tensor:
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def ve_to_vp(sigma):
    """``sigma -> alpha_bar = 1 / (1 + sigma^2)`` (inverse of :func:`vp_to_ve`); ``sigma >= 0`` and finite."""
    s = as_values(sigma, "sigma", lo=0.0)
    return 1.0 / (1.0 + s ** 2)


def ddpm_linear_alpha_bar(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2) -> torch.Tensor:
    """``alpha_bar_t`` for t = 1..T of DDPM's linear beta schedule (both betas in (0, 1))."""
    T = integer(T, "T")
    beta_start = in_interval(beta_start, "beta_start", 0.0, 1.0, closed="neither")
    beta_end = in_interval(beta_end, "beta_end", 0.0, 1.0, closed="neither")
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def iddpm_cosine_alpha_bar(T: int = 4000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """``alpha_bar_t`` for t = 1..T of IDDPM's cosine schedule (betas clipped at ``max_beta`` in (0, 1))."""
    T, s = integer(T, "T"), non_negative(s, "s")
    max_beta = in_interval(max_beta, "max_beta", 0.0, 1.0, closed="neither")
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1 - betas, 0)


def schedule_sigmas(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Canonical sigma of every step of a discrete VP schedule (increasing in t)."""
    return vp_to_ve(alpha_bar)[1]


def _valid_timestep_args(sigma, alpha_bar) -> bool:
    """One device sync: tensors ``alpha_bar`` (1-D, >= 2 steps, in (0, 1], decreasing) and finite ``sigma > 0``."""
    if not (isinstance(sigma, torch.Tensor) and isinstance(alpha_bar, torch.Tensor)) or alpha_bar.dim() != 1 \
            or len(alpha_bar) < 2 or not (sigma.is_floating_point() and alpha_bar.is_floating_point()):
        return False
    a, s = alpha_bar, sigma
    ok = (a > 0).all() & (a <= 1).all() & (a[1:] < a[:-1]).all() & torch.isfinite(s).all() & (s > 0).all()
    return bool(ok)


def sigma_to_timestep(sigma, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Continuous timestep index (0-based, fractional) of a VP schedule whose sigma equals ``sigma``.

    Linear interpolation in log-sigma between the schedule's steps; the inverse of indexing
    :func:`schedule_sigmas`. Used to feed a discrete-time network its own timestep.
    """
    if not _valid_timestep_args(sigma, alpha_bar):           # a network's hot path passes with one sync
        alpha_bar = as_values(alpha_bar, "alpha_bar", lo=0.0, hi=1.0, closed="right")
        sigma = as_values(sigma, "sigma", lo=0.0, closed="neither")
        if not _valid_timestep_args(sigma, alpha_bar):
            raise ValueError("alpha_bar: expected a 1-D schedule of at least 2 steps, strictly decreasing in t")
    log_sched = _vp_sigma(alpha_bar.double()).log()
    ls = sigma.to(dtype=torch.float64, device=log_sched.device).log()
    idx = torch.searchsorted(log_sched, ls.clamp(log_sched[0], log_sched[-1]).contiguous())
    idx = idx.clamp(1, len(log_sched) - 1)
    lo, hi = log_sched[idx - 1], log_sched[idx]
    w = ((ls.clamp(log_sched[0], log_sched[-1]) - lo) / (hi - lo)).clamp(0, 1)
    return idx - 1 + w


# --- Ornstein-Uhlenbeck time (random-features theory) ----------------------------------------------

def ou_to_ve(t):
    """OU time ``t -> (scale, sigma)``: ``scale = exp(-t)``, ``sigma = sqrt(exp(2t) - 1)``."""
    t = as_values(t, "t", lo=0.0, closed="neither")
    return torch.exp(-t), torch.expm1(2 * t).sqrt()


def ve_to_ou(sigma):
    """``sigma -> t = log(1 + sigma^2) / 2`` (inverse of :func:`ou_to_ve`); ``sigma >= 0`` and finite."""
    s = as_values(sigma, "sigma", lo=0.0)
    return 0.5 * torch.log1p(s ** 2)


def ou_delta(t) -> float | np.ndarray:
    """``Delta_t = 1 - exp(-2t)``: the variance of the OU noise at time ``t >= 0`` (finite)."""
    as_values(t, "t", lo=0.0)
    return -np.expm1(-2 * np.asarray(t, dtype=np.float64))
