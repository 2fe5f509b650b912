"""Samplers over a decreasing noise grid, one small function each, all with one signature.

``sampler(model, x, sigmas, *, generator=None, callback=None) -> x``: ``x`` starts at noise level
``sigmas[0]`` and ends at ``sigmas[-1]`` (0 for a full sample). ``callback(i, x, sigma, denoised)``
sees the state ``x`` at ``sigmas[i]`` and the model's output there, before each step.

Probability-flow ODE in the canonical form: ``dx/dsigma = (x - D(x, sigma)) / sigma``.
* ``euler``: first order.  * ``heun``: EDM's second-order corrector (Euler on the final jump to 0).
* ``ancestral``: exact draw from ``q(x_next | x, y = D)`` of the variance-exploding process (the
  DDPM-ancestral equivalent): ``x_next = D + (sigma_next^2 / sigma^2)(x - D) + sigma_up z``,
  ``sigma_up^2 = sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import as_batch, as_grid, flag, function


def _denoise(model, x, sigma):
    s = torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)
    return model(x, s).to(x.dtype)


def sample_euler(model, x, sigmas, *, generator=None, callback=None):
    """Euler steps of the probability-flow ODE."""
    for i in range(len(sigmas) - 1):
        den = _denoise(model, x, sigmas[i])
        if callback is not None:
            callback(i, x, sigmas[i], den)
        x = x + (x - den) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def sample_heun(model, x, sigmas, *, generator=None, callback=None):
    """Heun (trapezoidal) steps of the probability-flow ODE; a plain Euler step onto sigma = 0."""
    for i in range(len(sigmas) - 1):
        den = _denoise(model, x, sigmas[i])
        if callback is not None:
            callback(i, x, sigmas[i], den)
        d = (x - den) / sigmas[i]
        dt = sigmas[i + 1] - sigmas[i]
        x_next = x + d * dt
        if sigmas[i + 1] > 0:
            d_next = (x_next - _denoise(model, x_next, sigmas[i + 1])) / sigmas[i + 1]
            x_next = x + 0.5 * (d + d_next) * dt
        x = x_next
    return x


def sample_ancestral(model, x, sigmas, *, generator=None, callback=None):
    """Ancestral (reverse-SDE / DDPM-equivalent) sampling: exact Gaussian posterior draws given D."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        den = _denoise(model, x, s)
        if callback is not None:
            callback(i, x, sigmas[i], den)
        x = den + (s_next ** 2 / s ** 2) * (x - den)
        if s_next > 0:
            sigma_up = (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                            device=generator.device if generator is not None else x.device)
            x = x + sigma_up * z.to(x.device)
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "ancestral": sample_ancestral}


@dataclass
class Trajectory:
    """States ``x`` ``[T+1, B, *shape]`` at ``sigma`` ``[T+1]`` and model outputs ``denoised`` ``[T, B, *shape]``."""

    x: torch.Tensor
    sigma: torch.Tensor
    denoised: torch.Tensor


def sample(model, noise, sigmas, *, method: str = "heun", generator: torch.Generator | None = None,
           return_trajectory: bool = False, reuse: bool = False, tol: float = 1e-12, record: list | None = None):
    """Draw samples: start at ``x = sigmas[0] * noise`` and integrate down the grid ``sigmas``.

    Args:
        model: any :class:`memgen.Denoiser`.
        noise: standard normal ``[B, *shape]`` (draw it with a seeded generator for reproducibility).
        sigmas: a 1-D grid of strictly decreasing noise levels, e.g. :func:`memgen.edm_sigmas` (last entry 0).
        method: ``'heun'`` (default), ``'euler'`` or ``'ancestral'``.
        generator: randomness of the stochastic sampler.
        return_trajectory: also return a :class:`Trajectory` of every state and denoised output.
        reuse: Heun steps that stop touching every training point once the posterior has collapsed,
            for models with that capability (``model.sample_reusing``, e.g. ``toymodels.EmpiricalDenoiser``:
            same samples as the plain sampler up to a certified dropped weight ``< n tol`` per call);
            ``record`` (a list) then receives one dict per denoiser call, saying how many queries took a full pass.
    """
    function(model, "model", "a denoiser model(x, sigma)")
    return_trajectory = flag(return_trajectory, "return_trajectory")
    if method not in SAMPLERS:
        raise ValueError(f"method: expected one of {sorted(SAMPLERS)}, got {method!r}")
    sig = as_grid(sigmas)
    if reuse:
        if method != "heun" or return_trajectory:
            raise ValueError("reuse: only for method='heun' without return_trajectory")
        if not callable(getattr(model, "sample_reusing", None)):
            raise TypeError(f"reuse: {type(model).__name__} has no sample_reusing capability"
                            " (toymodels.EmpiricalDenoiser has)")
        out = model.sample_reusing(noise, sigmas, tol=tol, record=record)
        return out.to(noise.dtype) if isinstance(noise, torch.Tensor) else out
    noise = as_batch(noise, "noise", event_shape=getattr(model, "event_shape", None))
    levels = [float(v) for v in sig]
    states, outs = [], []

    def record(i, x, s, den):
        states.append(x.detach().clone())
        outs.append(den.detach().clone())

    with torch.no_grad():
        x = SAMPLERS[method](model, noise * levels[0], levels, generator=generator,
                             callback=record if return_trajectory else None)
    if not return_trajectory:
        return x
    return x, Trajectory(torch.stack(states + [x]), sig, torch.stack(outs))
