"""Input validation shared by every model and metric.

Every public entry point turns bad input into a ``ValueError``/``TypeError`` that names the
argument and what was expected, before any tensor arithmetic can fail deep inside torch.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_tensor(x, name: str, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Convert ``x`` (tensor, numpy array, nested list) to a floating tensor; reject NaN/inf, booleans,
    complex numbers, strings and ragged lists."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, (np.ndarray, list, tuple, float, int, np.number)):
        try:
            a = np.asarray(x)
        except ValueError as e:                                   # ragged nested lists
            raise ValueError(f"{name}: expected a rectangular array ({e})") from e
        if a.dtype.kind not in "iuf":
            raise TypeError(f"{name}: expected an array of real numbers, got dtype {a.dtype}")
        t = torch.as_tensor(a)
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (t.is_floating_point() or t.dtype in _INTEGER_DTYPES):
        raise TypeError(f"{name}: expected a real floating-point array, got dtype {t.dtype}")
    if dtype is not None or not t.is_floating_point():
        t = t.to(dtype or torch.get_default_dtype())
    if device is not None:
        t = t.to(device)
    if not all_finite(t):
        raise ValueError(f"{name}: contains NaN or inf")
    return t


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element of a floating tensor is finite, from one ``aminmax`` reduction (NaN propagates
    to both ends, an infinity reaches one): no ``[t]`` boolean temporary, a tenth of the time of
    ``isfinite(t).all()`` on a ``[2000, 3072]`` float32 batch (0.9 ms against 9.5 ms on 2 cores)."""
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


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
    """Noise levels as a ``[B]`` tensor: a positive float, or one positive value per batch element.

    A tensor keeps its autograd graph (a model may be differentiated in sigma)."""
    if isinstance(sigma, (bool, np.bool_)) or (isinstance(sigma, torch.Tensor) and sigma.dtype == torch.bool):
        raise TypeError(f"{name}: expected a float or a [B] tensor of noise levels, got booleans")
    if isinstance(sigma, torch.Tensor):
        s = sigma.to(dtype=dtype, device=device)
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


def as_grid(sigmas, name: str = "sigmas") -> torch.Tensor:
    """A sampler's noise grid: a 1-D, strictly decreasing float64 tensor of at least two levels >= 0
    (a grid of another shape is refused, not flattened)."""
    sig = as_tensor(sigmas, name, dtype=torch.float64)
    if sig.dim() != 1 or sig.numel() < 2:
        raise ValueError(f"{name}: expected a 1-D grid of at least two noise levels, got shape {tuple(sig.shape)}")
    if bool((sig[:-1] <= sig[1:]).any()) or float(sig[-1]) < 0:
        raise ValueError(f"{name}: must be strictly decreasing and non-negative")
    return sig


def _real(value, name: str) -> float:
    """A real number (Python, numpy or 0-d tensor); bools, strings, None and arrays are refused by type."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_complex():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    return float(value)


def integer(value, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (sizes, counts, steps, widths); bools and non-integral numbers are refused."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
            or (isinstance(value, (float, np.floating)) and not np.isfinite(value))
            or int(value) != value or value < minimum):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def path(value, name: str) -> Path:
    """A file-system path given as a ``str`` or ``os.PathLike`` (not a number, not None)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or pathlib.Path), got {type(value).__name__}")
    return Path(value)


def out_folder(text: str) -> Path:
    """argparse type of an output-folder option (``--out``): refuses an existing file before any work is done
    (an ``argparse.ArgumentTypeError``, whose message argparse prints as it is)."""
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; expected a folder (it is created if missing)")
    return folder


def function(value, name: str, what: str = "a callable"):
    """A callable argument (a model ``D(x, sigma)``, a feature map, a statistic); returned as it is."""
    if not callable(value):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    return value


def flag(value, name: str) -> bool:
    """A bool (Python or numpy): switches such as ``rotate``, ``train``, ``squared`` are not guessed from other types."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def finite(value, name: str) -> float:
    """A finite real number (a location, an offset, ...)."""
    v = _real(value, name)
    if not np.isfinite(v):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return v


def positive(value, name: str) -> float:
    """A finite, strictly positive float (hyper-parameters: radius, delta, psi, t, ...)."""
    v = _real(value, name)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return v


def non_negative(value, name: str) -> float:
    """A finite float ``>= 0`` (a tolerance, a standard deviation that may vanish, ...)."""
    v = _real(value, name)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return v


def _interval(lo, hi, closed: str) -> str:
    return ("[" if closed in ("both", "left") else "(") + f"{lo:g}, {hi:g}" + ("]" if closed in ("both", "right") else ")")


def _inside(v, lo, hi, closed: str):
    """``lo <= v <= hi`` with each end included as ``closed`` says, for a float or elementwise for a tensor."""
    return (v >= lo if closed in ("both", "left") else v > lo) & (v <= hi if closed in ("both", "right") else v < hi)


def in_interval(value, name: str, lo: float, hi: float, *, closed: str = "both") -> float:
    """A finite float in the interval from ``lo`` to ``hi``; ``closed`` is ``both``, ``left``, ``right`` or ``neither``."""
    v = _real(value, name)
    if not (np.isfinite(v) and _inside(v, lo, hi, closed)):
        raise ValueError(f"{name}: must lie in {_interval(lo, hi, closed)}, got {value!r}")
    return v


def as_values(x, name: str, *, lo: float = -np.inf, hi: float = np.inf, closed: str = "both") -> torch.Tensor:
    """A float64 tensor of any shape (a scalar or an array) whose entries are finite and lie between ``lo`` and
    ``hi`` (``closed`` as in :func:`in_interval`): the argument of a schedule conversion, a series of values."""
    t = as_tensor(x, name, dtype=torch.float64)
    ok = _inside(t, lo, hi, closed)
    if not bool(ok.all()):
        raise ValueError(f"{name}: must lie in {_interval(lo, hi, closed)}, got {float(t[~ok].reshape(-1)[0]):g}")
    return t
