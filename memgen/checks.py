"""Input validation shared by every model and metric.

Every public entry point turns bad input into a ``ValueError``/``TypeError`` that names the
argument and what was expected, before any tensor arithmetic can fail deep inside torch.
"""
from __future__ import annotations

import numpy as np
import torch


def as_tensor(x, name: str, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Convert ``x`` (tensor, numpy array, nested list) to a floating tensor; reject NaN/inf."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, (np.ndarray, list, tuple, float, int)):
        t = torch.as_tensor(np.asarray(x))
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise TypeError(f"{name}: expected a real floating-point array, got dtype {t.dtype}")
    if dtype is not None or not t.is_floating_point():
        t = t.to(dtype or torch.get_default_dtype())
    if device is not None:
        t = t.to(device)
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return t


def as_batch(x, name: str = "x", *, event_shape: tuple | None = None, **kw) -> torch.Tensor:
    """A batch ``[B, *event_shape]`` with B >= 1; a single sample without batch axis is an error."""
    t = as_tensor(x, name, **kw)
    if t.dim() < 2:
        raise ValueError(
            f"{name}: expected a batch of shape [B, *shape] (at least 2-D), got shape {tuple(t.shape)};"
            f" add a batch axis, e.g. {name}[None]"
        )
    if t.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty (shape {tuple(t.shape)})")
    if event_shape is not None and tuple(t.shape[1:]) != tuple(event_shape):
        raise ValueError(
            f"{name}: shape {tuple(t.shape)} does not match the data shape [B, {', '.join(map(str, event_shape))}]"
        )
    return t


def as_points(y, name: str = "train", **kw) -> torch.Tensor:
    """A non-empty point set ``[n, *shape]`` (training data, means, ...)."""
    t = as_tensor(y, name, **kw)
    if t.dim() < 2:
        raise ValueError(f"{name}: expected points of shape [n, *shape] (at least 2-D), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name}: the point set is empty; at least one point is needed")
    return t


def as_sigma(sigma, batch: int, *, dtype: torch.dtype, device, name: str = "sigma") -> torch.Tensor:
    """Noise levels as a ``[B]`` tensor: a positive float, or one positive value per batch element."""
    if isinstance(sigma, torch.Tensor):
        s = sigma.detach().to(dtype=dtype, device=device)
    else:
        try:
            s = torch.as_tensor(np.asarray(sigma, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: expected a float or a [B] tensor, got {type(sigma).__name__}") from e
    if s.dim() == 0:
        s = s.expand(batch)
    elif s.dim() != 1 or s.shape[0] not in (1, batch):
        raise ValueError(f"{name}: expected a float or a tensor of shape [{batch}], got shape {tuple(s.shape)}")
    elif s.shape[0] == 1:
        s = s.expand(batch)
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    if not bool((s > 0).all()):
        raise ValueError(f"{name}: noise levels must be > 0, got min {float(s.min()):.3g}")
    return s


def integer(value, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (sizes, counts, steps, widths); bools and non-integral numbers are refused."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or int(value) != value or value < minimum):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def positive(value, name: str) -> float:
    """A finite, strictly positive float (hyper-parameters: radius, delta, psi, t, ...)."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return v


def non_negative(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return v
