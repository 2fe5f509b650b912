"""Localization of a flow field: how many training points a denoiser listens to, and how close it is
to the identity or to a reference (optimal) denoiser.

At a state ``x`` and noise ``sigma``:

* posterior entropy ``H = -sum_i w_i log w_i`` of the model's posterior over training points and the
  effective number of contributing points ``exp(H)`` (1 when one point dominates, n when all share
  equally); only for models with the optional ``posterior`` capability
  (:func:`memgen.contract.supports_posterior`);
* for any model, its displacement ``||D(x, sigma) - x||``, the identity-like indicator
  ``||D(x, sigma) - x|| < sigma`` (Kaiser & Kollmann), and, given a ``reference`` denoiser (e.g. the
  optimal denoiser of the same training set, built by the caller), ``||D(x, sigma) - D_ref(x, sigma)||``.

States are given points at each sigma of a grid (optionally noised, ``x + sigma * noise``, with the
same draws at every sigma), or the states of a sampling trajectory at their own noise levels.
"""
from __future__ import annotations

import torch

from memgen.checks import as_batch, as_tensor, integer
from memgen.contract import supports_posterior
from memgen.progress import progress_bar

from .gap import check_tags, denoise, sigma_grid
from .records import Records
from .trajectories import is_trajectory, trajectory_states

COLUMNS = ("step", "sigma", "point", "displacement", "identity_like", "entropy", "effective_number",
           "reference_distance")


def _states(x, sigmas, noise, dtype):
    """``[(step, sigma, states [B, *shape])]`` for a point set on a sigma grid, or for a trajectory."""
    if is_trajectory(x):
        if sigmas is not None or noise is not None:
            raise ValueError("sigmas/noise: a trajectory carries its own states and noise levels; pass neither")
        states, sig = trajectory_states(x, dtype)
        return [(t, float(s), states[t]) for t, s in enumerate(sig.tolist()) if s > 0]
    if sigmas is None:
        raise ValueError("sigmas: required when x is a point set (only a trajectory carries its own)")
    pts = as_batch(x, "x", dtype=dtype)
    z = None
    if noise is not None:
        z = as_tensor(noise, "noise", dtype=dtype)
        if tuple(z.shape) != tuple(pts.shape):
            raise ValueError(f"noise: expected the shape of x {tuple(pts.shape)}, got {tuple(z.shape)}")
    return [(None, s, pts if z is None else pts + s * z) for s in sigma_grid(sigmas).tolist()]


def localization(model, x, sigmas=None, *, noise=None, reference=None, batch_size: int = 1024,
                 dtype: torch.dtype = torch.float32, tags: dict | None = None, progress: bool = True) -> Records:
    """Entropy, effective number, displacement, identity-likeness and distance to a reference, per state.

    Args:
        model: any :class:`memgen.Denoiser`; entropy columns are filled only if it has ``posterior``.
        x: points ``[B, *shape]`` (evaluated at every sigma of ``sigmas``), or a
            :class:`memgen.Trajectory` (each state at its own sigma; states at sigma = 0 are skipped).
        sigmas: the noise grid for a point set.
        noise: optional ``[B, *shape]`` draws: the states are ``x + sigma * noise`` (same draws at every sigma).
        reference: optional denoiser to compare with (e.g. the optimal one of the training set).
        tags: columns added to every row.

    Returns one row per (state, sigma): ``step`` (trajectory step or None), ``sigma``, ``point``,
    ``displacement = ||D - x||``, ``identity_like = displacement < sigma``, ``entropy``,
    ``effective_number = exp(entropy)`` (None without a posterior), ``reference_distance`` (None
    without a reference), plus tags.
    """
    tags = check_tags(tags, COLUMNS)
    batch_size = integer(batch_size, "batch_size")
    has_posterior = supports_posterior(model)
    rows = Records()
    for step, s, states in progress_bar(_states(x, sigmas, noise, dtype), enabled=progress,
                                        desc="localization", leave=False):
        flat = states.reshape(states.shape[0], -1).double()
        den = denoise(model, states, s, batch_size).reshape(states.shape[0], -1).double()
        disp = (den - flat).norm(dim=1)
        ref = None
        if reference is not None:
            ref = (den - denoise(reference, states, s, batch_size).reshape(states.shape[0], -1).double()).norm(dim=1)
        ent = None
        if has_posterior:
            with torch.no_grad():
                ent = torch.cat([torch.as_tensor(model.posterior(states[b0:b0 + batch_size], s, topk=1).entropy)
                                 .double().cpu() for b0 in range(0, states.shape[0], batch_size)])
        for b in range(states.shape[0]):
            rows.append({**tags, "step": step, "sigma": s, "point": b, "displacement": float(disp[b]),
                         "identity_like": bool(disp[b] < s),
                         "entropy": None if ent is None else float(ent[b]),
                         "effective_number": None if ent is None else float(ent[b].exp()),
                         "reference_distance": None if ref is None else float(ref[b])})
    return rows
