"""Fidelity of generated samples: exact where the distribution is known, distances in a stated feature space otherwise.

* :func:`mondrian_validity`: does each image obey the Mondrian rule (exact, per image).
* :func:`log_likelihood`: ``log p(x)`` under any known density object (e.g. a Gaussian mixture).
* :func:`sliced_wasserstein` and :func:`frechet_distance`: between two sample sets, in pixels by default
  or in the features of any callable ``features: [B, *shape] -> [B, k]``.
"""
from __future__ import annotations

import numpy as np
import torch

from memgen.checks import as_batch, as_points, as_tensor, in_interval, integer, non_negative
from memgen.data.images import mondrian_bar_width


def _as_input(x, out: torch.Tensor):
    """numpy in, numpy out."""
    return out.cpu().numpy() if isinstance(x, np.ndarray) else out


def _corner_range(x: torch.Tensor) -> torch.Tensor:
    """``R[b, i, j] = max_c (max - min)`` of channel c over the rectangle rows ``0..i``, columns ``0..j``."""
    hi = x.cummax(2).values.cummax(3).values
    lo = x.cummin(2).values.cummin(3).values
    return (hi - lo).amax(1)


def mondrian_validity(images, *, tol: float = 2 / 255, bar_width: int | None = None,
                      batch_size: int = 1024):
    """Per image: True when it obeys the Mondrian rule of :func:`memgen.data.mondrian` (``[B]`` bool).

    An image ``[C, H, W]`` is valid iff all its values lie in ``[-1 - tol, 1 + tol]`` and there are bar
    positions ``1 <= r <= H - w - 1`` and ``1 <= c <= W - w - 1`` (``w = bar_width``, default
    ``mondrian_bar_width(min(H, W))``) such that each of the four quadrants
    ``[0, r) x [0, c)``, ``[0, r) x [c + w, W)``, ``[r + w, H) x [0, c)``, ``[r + w, H) x [c + w, W)``
    is one colour: ``max - min <= tol`` in every channel. Pixels on the cross may take any value.
    All ``(r, c)`` are checked at once from corner-anchored running max/min, so the test is exact.
    The default ``tol`` is one 8-bit level in [-1, 1] units; a constant image is valid (measure zero
    under the data, where the cross pixels are continuous). The rule constrains little in tiny images
    (at 3x3 with ``w = 1`` every quadrant is one pixel, so every image in range is valid).
    """
    x = as_batch(images, "images")
    tol = non_negative(tol, "tol")
    if x.dim() != 4:
        raise ValueError(f"images: expected [B, C, H, W], got shape {tuple(x.shape)}")
    H, W = x.shape[2:]
    w = mondrian_bar_width(min(H, W)) if bar_width is None else integer(bar_width, "bar_width")
    batch_size = integer(batch_size, "batch_size")
    if min(H, W) < w + 2:
        raise ValueError(f"images: {H}x{W} images cannot hold a {w}-pixel cross and four quadrants")
    out = []
    for xb in x.split(int(batch_size)):
        tl = _corner_range(xb)
        tr = _corner_range(xb.flip(3)).flip(-1)
        bl = _corner_range(xb.flip(2)).flip(-2)
        br = _corner_range(xb.flip(2, 3)).flip(-2, -1)
        worst = torch.stack([tl[:, :H - w - 1, :W - w - 1], tr[:, :H - w - 1, w + 1:],
                             bl[:, w + 1:, :W - w - 1], br[:, w + 1:, w + 1:]]).amax(0)
        in_range = (xb.flatten(1).amin(1) >= -1 - tol) & (xb.flatten(1).amax(1) <= 1 + tol)
        out.append((worst <= tol).flatten(1).any(1) & in_range)
    return _as_input(images, torch.cat(out))


def mondrian_valid_fraction(images, **kwargs) -> float:
    """Fraction of ``images`` that obey the Mondrian rule (``mean`` of :func:`mondrian_validity`)."""
    return float(np.mean(np.asarray(mondrian_validity(images, **kwargs), dtype=np.float64)))


def log_likelihood(samples, density, *, batch_size: int = 4096):
    """``log p(x_i)`` for each sample (nats, ``[B]``), with ``p`` given by ``density.log_density(x)``.

    ``density`` is any object with a ``log_density(x) -> [B]`` method (e.g. ``toymodels.GMMDenoiser``:
    ``log sum_k pi_k N(x; mu_k, C_k)``). The average log-likelihood is the mean of the result; in bits per
    dimension it is ``-mean / (d log 2)``.
    """
    fn = getattr(density, "log_density", None)
    if not callable(fn):
        raise TypeError(f"density: expected an object with a log_density(x) method, got {type(density).__name__}")
    x = as_batch(samples, "samples", event_shape=getattr(density, "event_shape", None))
    out = []
    for xb in x.split(integer(batch_size, "batch_size")):
        lp = torch.as_tensor(fn(xb))
        if lp.shape != (len(xb),):
            raise ValueError(f"density: log_density returned shape {tuple(lp.shape)} for {len(xb)} samples")
        if bool(torch.isnan(lp).any()):
            raise ValueError("density: log_density returned NaN")
        out.append(lp)
    return _as_input(samples, torch.cat(out))


def _features(x, features, name: str) -> torch.Tensor:
    """``[B, k]`` float64: the flattened samples, or ``features(samples)``."""
    t = as_points(x, name)
    if features is None:
        return t.reshape(len(t), -1).double()
    if not callable(features):
        raise TypeError(f"features: expected a callable [B, *shape] -> [B, k] or None, got {type(features).__name__}")
    f = as_tensor(features(t), f"features({name})", dtype=torch.float64)
    if f.dim() != 2 or f.shape[0] != len(t):
        raise ValueError(f"features: must map [B, *shape] to [B, k]; gave shape {tuple(f.shape)} for B={len(t)}")
    return f


def _pair(a, b, features) -> tuple[torch.Tensor, torch.Tensor]:
    fa, fb = _features(a, features, "a"), _features(b, features, "b")
    if features is None and tuple(np.shape(a)[1:]) != tuple(np.shape(b)[1:]):
        raise ValueError(f"a, b: samples of different shapes {tuple(np.shape(a)[1:])} and {tuple(np.shape(b)[1:])}")
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"b: {fb.shape[1]} features per sample, but a has {fa.shape[1]}")
    return fa, fb


def wasserstein_1d_pow(u: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
    """``W_p^p`` between the empirical distributions of each row of ``u`` ``[L, n]`` and ``v`` ``[L, m]``.

    ``W_p^p = int_0^1 |F_u^-1(t) - F_v^-1(t)|^p dt``, exact: the quantile functions are step functions
    that change only at ``t = i/n`` and ``t = j/m``, so the integral is a sum over the merged steps.
    """
    n, m = u.shape[1], v.shape[1]
    us, vs = u.sort(1).values, v.sort(1).values
    t = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n,
                   torch.arange(1, m + 1, dtype=torch.float64) / m]).unique()      # sorted, ends at 1
    width = torch.diff(t, prepend=t.new_zeros(1))
    mid = t - width / 2
    iu = (mid * n).floor().long().clamp(max=n - 1)
    iv = (mid * m).floor().long().clamp(max=m - 1)
    return ((us[:, iu] - vs[:, iv]).abs() ** p * width).sum(1)


def sliced_wasserstein(a, b, *, projections: int = 256, p: float = 2.0, features=None, seed: int = 0,
                       generator: torch.Generator | None = None, chunk: int = 64) -> float:
    """Sliced p-Wasserstein distance between the sample sets ``a`` ``[n, *shape]`` and ``b`` ``[m, *shape]``.

    ``SW_p(a, b) = ( E_theta W_p^p(theta . a, theta . b) )^(1/p)``, ``theta`` uniform on the unit sphere of
    the feature space (pixels flattened by default; ``features`` any callable ``[B, *shape] -> [B, k]``),
    estimated with ``projections`` directions from ``generator`` (or ``seed``); each 1-D ``W_p`` between the
    projected empirical distributions is exact (:func:`wasserstein_1d_pow`). Computed in float64.
    """
    fa, fb = _pair(a, b, features)
    p = in_interval(p, "p", 1.0, np.inf, closed="left")
    projections, chunk = integer(projections, "projections"), integer(chunk, "chunk")
    g = generator if generator is not None else torch.Generator().manual_seed(integer(seed, "seed", 0))
    theta = torch.randn(int(projections), fa.shape[1], generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=1, keepdim=True)
    total = sum(float(wasserstein_1d_pow(th @ fa.T, th @ fb.T, p).sum()) for th in theta.split(int(chunk)))
    return (total / int(projections)) ** (1 / p)


def frechet_distance(a, b, *, features=None) -> float:
    """Fréchet distance between Gaussians fitted to ``a`` ``[n, *shape]`` and ``b`` ``[m, *shape]`` (n, m >= 2).

    ``FD = ||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^(1/2) C_b C_a^(1/2))^(1/2))`` with the sample
    means and unbiased covariances of the features (pixels flattened by default; ``features`` any callable
    ``[B, *shape] -> [B, k]``; FID is this with Inception features). With the centred, scaled data
    ``A = (a - mu_a) / sqrt(n - 1)`` (so ``C_a = A^T A``) and ``B`` alike, the trace term equals the nuclear
    norm ``||A B^T||_*`` (the eigenvalues of ``C_a C_b`` are the squared singular values of ``A B^T``);
    after reduced QR ``A = Q_a R_a``, ``B = Q_b R_b`` it is ``||R_a R_b^T||_*``: no matrix square root,
    and the SVD is of a ``min(n, k) x min(m, k)`` matrix. Computed in float64; round-off below 0 is clamped.
    """
    fa, fb = _pair(a, b, features)
    for name, f in (("a", fa), ("b", fb)):
        if len(f) < 2:
            raise ValueError(f"{name}: need at least 2 samples for a covariance, got {len(f)}")
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    A = (fa - mu_a) / (len(fa) - 1) ** 0.5
    B = (fb - mu_b) / (len(fb) - 1) ** 0.5
    ra = torch.linalg.qr(A, mode="r").R           # A = Q_a R_a, R_a [min(n, k), k]
    rb = torch.linalg.qr(B, mode="r").R
    cross = torch.linalg.svdvals(ra @ rb.T).sum()  # ||A B^T||_* = ||Q_a R_a R_b^T Q_b^T||_* = ||R_a R_b^T||_*
    fd = ((mu_a - mu_b) ** 2).sum() + (A ** 2).sum() + (B ** 2).sum() - 2 * cross
    return float(fd.clamp(min=0))
