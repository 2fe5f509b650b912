"""Denoising error per noise level and the generalization gap, for any denoiser.

For points ``y_1..y_N`` and fixed standard-normal draws ``n_{k,i}`` (common random numbers: the SAME
draws for every sigma and every model, drawn once from a seed), the per-point error at sigma is

* squared per dimension (default): ``e_i(sigma) = (1/K) sum_k ||D(y_i + sigma n_{k,i}, sigma) - y_i||^2 / d``
* unsquared L2 (``squared=False``, Kaiser & Kollmann's toy): ``e_i(sigma) = (1/K) sum_k ||D(...) - y_i||``

and the denoising error is ``E(sigma) = (1/N) sum_i e_i(sigma)``. The generalization gap compares the
training and validation points: ``G = (E_val - E_train) / E_train`` (relative) and ``E_val - E_train``
(absolute). Intervals are percentile bootstraps over points (training and validation points
resampled independently, the noise draws kept with their points).
"""
from __future__ import annotations

import numpy as np
import torch

from memgen.checks import as_points, as_tensor, flag, function, integer
from memgen.contract import model_device
from memgen.progress import progress_bar

from .bootstrap import bootstrap, check_bootstrap, weighted_mean
from .records import Records


def sigma_grid(sigmas, name: str = "sigmas") -> torch.Tensor:
    """A non-empty 1-D float64 tensor of noise levels, all finite and > 0."""
    s = as_tensor(sigmas, name, dtype=torch.float64).reshape(-1)
    if s.numel() == 0:
        raise ValueError(f"{name}: expected at least one noise level")
    if bool((s <= 0).any()):
        raise ValueError(f"{name}: noise levels must be > 0, got min {float(s.min()):.3g}")
    return s


def check_tags(tags, reserved=()) -> dict:
    """Columns added to every row (e.g. ``{'model': 'optimal', 'delta': 1.6}``); must not shadow metric columns."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise TypeError(f"tags: expected a dict of column -> value, got {type(tags).__name__}")
    clash = sorted(set(tags) & set(reserved))
    if clash:
        raise ValueError(f"tags: {clash} are metric columns; choose other names")
    return dict(tags)


def common_noise(n_points: int, shape, *, n_draws: int = 1, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal draws ``[n_draws, n_points, *shape]`` from ``torch.Generator().manual_seed(seed)``.

    Pass the same tensor (or the same seed) to every model and every sigma: common random numbers.
    """
    g = torch.Generator().manual_seed(integer(seed, "seed", 0))
    return torch.randn(integer(n_draws, "n_draws"), integer(n_points, "n_points"),
                       *tuple(shape), generator=g, dtype=dtype)


def denoise(model, x: torch.Tensor, sigma: float, batch_size: int) -> torch.Tensor:
    """``D(x, sigma)`` of any contract model, in batches of ``batch_size``, without gradients.

    Each batch is sent to the model's device (:func:`memgen.contract.model_device`); results come back on the CPU.
    """
    function(model, "model", "a denoiser model(x, sigma)")
    outs = []
    device = model_device(model)
    with torch.no_grad():
        for b0 in range(0, x.shape[0], batch_size):
            xb = x[b0:b0 + batch_size]
            out = torch.as_tensor(model(xb.to(device), float(sigma))).detach().cpu()
            if tuple(out.shape) != tuple(xb.shape):
                raise ValueError(f"model: returned shape {tuple(out.shape)} for input of shape {tuple(xb.shape)}")
            outs.append(out)
    return torch.cat(outs)


def _noise_for(points: torch.Tensor, noise, n_draws: int, seed: int, name: str) -> torch.Tensor:
    if noise is None:
        return common_noise(points.shape[0], points.shape[1:], n_draws=n_draws, seed=seed, dtype=points.dtype)
    z = as_tensor(noise, name, dtype=points.dtype)
    if tuple(z.shape) == tuple(points.shape):
        z = z[None]
    if z.dim() != points.dim() + 1 or tuple(z.shape[1:]) != tuple(points.shape):
        dims = ", ".join(map(str, points.shape))
        raise ValueError(f"{name}: expected shape {tuple(points.shape)} or [n_draws, {dims}], got {tuple(z.shape)}")
    return z


def _draw_count(noise, points, n_draws: int) -> int:
    """How many draws per point were used: ``n_draws``, or the leading axis of an explicit ``[K, N, ...]`` noise."""
    if noise is None:
        return int(n_draws)
    return 1 if np.ndim(noise) == np.ndim(points) else int(np.shape(noise)[0])


def point_errors(model, points, sigmas, *, noise=None, n_draws: int = 1, seed: int = 0, squared: bool = True,
                 batch_size: int = 1024, dtype: torch.dtype = torch.float32, labels=None,
                 progress: bool = True, names: tuple[str, str] = ("points", "noise")) -> np.ndarray:
    """Per-point errors ``e_i(sigma)`` as a float64 array ``[N, len(sigmas)]`` (formula in the module doc).

    ``noise`` (``[N, *shape]`` or ``[K, N, *shape]``) overrides the draws made from ``seed``. ``labels``
    (``[N]``): the class of each point, for a class-conditional model, which is then called as
    ``model.with_labels(labels of the batch)(x, sigma)``. ``names`` are the argument names that errors
    about ``points`` and ``noise`` cite.
    """
    y = as_points(points, names[0], dtype=dtype)
    shape = getattr(model, "event_shape", None)
    if shape is not None and tuple(y.shape[1:]) != tuple(shape):
        raise ValueError(f"{names[0]}: points of shape {tuple(y.shape[1:])}, but the model takes {tuple(shape)}")
    sig = sigma_grid(sigmas)
    batch_size, squared = integer(batch_size, "batch_size"), flag(squared, "squared")
    z = _noise_for(y, noise, integer(n_draws, "n_draws"), integer(seed, "seed", 0), names[1])
    k, n = z.shape[0], y.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels: expected one label per point ({n}), got {len(labels)}")
    flat_noise = z.reshape(k * n, *y.shape[1:])
    out = np.empty((len(sig), k * n))
    for j, s in enumerate(progress_bar(sig.tolist(), enabled=progress, desc="denoising error", leave=False)):
        for b0 in range(0, k * n, batch_size):                     # draw-major order: row r is point r % n
            rows = torch.arange(b0, min(b0 + batch_size, k * n))
            clean = y[rows % n]
            fixed = model if labels is None else model.with_labels(labels[rows % n])
            den = denoise(fixed, clean + s * flat_noise[rows], s, batch_size)
            diff = den.reshape(len(rows), -1).double() - clean.reshape(len(rows), -1).double()
            e = diff.pow(2).mean(1) if squared else diff.norm(dim=1)
            if not bool(torch.isfinite(e).all()):
                raise ValueError(f"model: returned NaN or inf at sigma = {s:.4g}")
            out[j, b0:b0 + len(rows)] = e.numpy()
    return out.reshape(len(sig), k, n).mean(1).T


def _metric(squared: bool) -> str:
    return "squared_per_dim" if squared else "l2"


def denoising_error(model, points, sigmas, *, noise=None, n_draws: int = 1, seed: int = 0, squared: bool = True,
                    n_boot: int = 1000, level: float = 0.95, boot_seed: int = 0, batch_size: int = 1024,
                    dtype: torch.dtype = torch.float32, tags: dict | None = None, progress: bool = True) -> Records:
    """Denoising error ``E(sigma)`` of ``model`` on ``points`` at each sigma, with bootstrap intervals.

    Args:
        model: any :class:`memgen.Denoiser` (called as ``model(x, sigma)``).
        points: clean points ``[N, *shape]``.
        sigmas: noise levels (e.g. :func:`memgen.log_sigmas`).
        noise, n_draws, seed: the common random numbers (``n_draws`` draws per point from ``seed``,
            unless ``noise`` is given).
        squared: squared per-dimension error (default) or unsquared L2 norm.
        n_boot, level, boot_seed: the percentile bootstrap over points.
        tags: columns added to every row (e.g. the model's name).

    Returns one row per sigma: ``sigma, error, error_lo, error_hi, metric, n_points, n_draws`` (+ tags).
    """
    tags = check_tags(tags, ("sigma", "error", "error_lo", "error_hi", "metric", "n_points", "n_draws"))
    check_bootstrap(n_boot, level, boot_seed, "boot_seed")
    e = point_errors(model, points, sigmas, noise=noise, n_draws=n_draws, seed=seed, squared=squared,
                     batch_size=batch_size, dtype=dtype, progress=progress)
    est, lo, hi = bootstrap(lambda w: weighted_mean(w, e), e.shape[0], n_boot=n_boot, level=level, seed=boot_seed)
    return Records({**tags, "sigma": float(s), "error": float(est[j]), "error_lo": float(lo[j]),
                    "error_hi": float(hi[j]), "metric": _metric(squared), "n_points": e.shape[0],
                    "n_draws": _draw_count(noise, points, n_draws)}
                   for j, s in enumerate(sigma_grid(sigmas).tolist()))


GAP_COLUMNS = ("e_train", "e_val", "gap", "abs_gap")


def generalization_gap(model, train, val, sigmas, *, train_noise=None, val_noise=None, n_draws: int = 1,
                       seed: int = 0, squared: bool = True, n_boot: int = 1000, level: float = 0.95,
                       boot_seed: int = 0, batch_size: int = 1024, dtype: torch.dtype = torch.float32,
                       tags: dict | None = None, train_labels=None, val_labels=None,
                       progress: bool = True) -> Records:
    """Training and validation error and the gap ``G = (E_val - E_train) / E_train`` at each sigma.

    Common random numbers: the training points' draws come from ``seed`` and the validation points'
    from ``seed + 1`` (so :func:`denoising_error` with the same seed reproduces ``e_train``), unless
    ``train_noise``/``val_noise`` are given (``train_labels``/``val_labels``: the points' classes, for a
    class-conditional model, see :func:`point_errors`). The interval of each column resamples training and
    validation points independently (one resampling for all columns).

    Returns one row per sigma with ``sigma``, ``e_train``, ``e_val``, ``gap`` (relative), ``abs_gap``
    (``E_val - E_train``), each with ``_lo``/``_hi`` bounds, and ``metric, n_train, n_val, n_draws`` (+ tags).
    """
    reserved = ("sigma", "metric", "n_train", "n_val", "n_draws") + tuple(
        c + sfx for c in GAP_COLUMNS for sfx in ("", "_lo", "_hi"))
    tags = check_tags(tags, reserved)
    check_bootstrap(n_boot, level, boot_seed, "boot_seed")
    seed = integer(seed, "seed", 0)
    train, val = as_points(train, "train", dtype=dtype), as_points(val, "val", dtype=dtype)
    if train.shape[1:] != val.shape[1:]:
        raise ValueError(f"train, val: points of different shapes {tuple(train.shape[1:])} and {tuple(val.shape[1:])}")
    kw = dict(n_draws=n_draws, squared=squared, batch_size=batch_size, dtype=dtype, progress=progress)
    et = point_errors(model, train, sigmas, noise=train_noise, seed=seed, labels=train_labels,
                      names=("train", "train_noise"), **kw)
    ev = point_errors(model, val, sigmas, noise=val_noise, seed=seed + 1, labels=val_labels,
                      names=("val", "val_noise"), **kw)

    def statistic(wt, wv):
        mt, mv = weighted_mean(wt, et), weighted_mean(wv, ev)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # E_train can be exactly 0 (the exact denoiser at tiny sigma): the smallest positive float as
            # denominator, and the ratio clipped to the largest floats, keep the gap huge but finite, so its
            # bootstrap quantiles are not inf - inf = NaN
            big = np.finfo(np.float64).max
            rel = np.clip((mv - mt) / np.maximum(mt, np.finfo(np.float64).tiny), -big, big)
            return np.stack([mt, mv, rel, mv - mt], -1)

    est, lo, hi = bootstrap(statistic, et.shape[0], ev.shape[0], n_boot=n_boot, level=level, seed=boot_seed)
    rows = Records()
    for j, s in enumerate(sigma_grid(sigmas).tolist()):
        row = {**tags, "sigma": float(s)}
        for c, name in enumerate(GAP_COLUMNS):
            row.update({name: float(est[j, c]), f"{name}_lo": float(lo[j, c]), f"{name}_hi": float(hi[j, c])})
        row.update({"metric": _metric(squared), "n_train": et.shape[0], "n_val": ev.shape[0],
                    "n_draws": _draw_count(train_noise, train, n_draws)})
        rows.append(row)
    return rows
