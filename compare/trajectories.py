"""Where sampling trajectories go: distance to the training set and typicality under the noisy data.

For a state ``x`` of a trajectory at noise ``sigma > 0`` (``d`` dimensions, training points ``y_1..y_n``):

* nearest distance ``r = min_i ||x - y_i||`` and its scale-free form ``r / (sigma sqrt(d))`` (about 1
  for a real noisy training sample ``y_j + sigma eps`` once sigma is small against the data spacing);
* log-density under the noisy training data at that sigma,
  ``log p_sigma(x) = log (1/n) sum_i N(x; y_i, sigma^2 I)
                   = logsumexp_i(-||x - y_i||^2 / (2 sigma^2)) - log n - (d/2) log(2 pi sigma^2)``;
* typicality: the mid-rank percentile of ``log p_sigma(x)`` among the same quantity for reference
  samples of that very distribution, ``y_J + sigma eps`` (``J`` uniform, ``eps`` standard normal,
  drawn once from a seed and reused at every sigma). Real noisy training samples get uniform
  percentiles; near 0 means the state lies where the noisy training data almost never are, near 100
  that it sits closer to a training point than noise of that level ever leaves it.

The control (``val`` given): at small sigma every state that is not on a training point is atypical of
the noisy training data, memorizing model or not, so typicality alone cannot tell a generalizing model
from a broken one. Noisy *validation* points ``v_K + sigma eps'`` (``K`` uniform over ``val``, ``eps'``
standard normal, drawn once from the seed) go through the same measure at every sigma (rows with
``source = 'validation'``; the states have ``source = 'trajectory'``): they are what fresh data from the
distribution looks like to the noisy-training density. :func:`typicality_control` compares, per sigma,

* each source with the noisy-training reference: ``KS_ref = sup_u |F(u) - u|`` over the percentiles
  ``u`` (uniform for data of that very distribution). The percentiles are read off ``m`` reference draws,
  so ``KS_ref`` is the two-sample statistic of the ``n`` states against them, and its p-value is that
  of the two-sample test, ``P(D_{n_eff} > KS_ref)`` with ``n_eff = n m / (n + m)`` (a one-sample test
  would ignore the reference's own sampling error and reject too often);
* the states with the validation control: the two-sample Kolmogorov-Smirnov statistic of their
  log-densities, ``KS_val = sup_l |F_traj(l) - F_val(l)|``;

and :func:`parting_sigma` reads off the sigma from which a source's states stay apart from the
noisy-training reference (``KS_ref`` p-value below ``alpha`` there and at every smaller sigma, so one
chance rejection among many sigmas does not count as parting): a memorizing model's states never part
(or part at the sigma where the validation control does not), a generalizing model's part where the
validation control parts.

Distances are streamed over training chunks by GEMM (:func:`memgen.pairwise.sq_distance_chunks`), with
a running minimum and a running log-sum-exp, in float64 by default (the logits ``-||x - y||^2 / 2 sigma^2``
are large at small sigma). States at sigma = 0 are skipped.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from memgen.checks import as_points, as_tensor, integer
from memgen.pairwise import DEFAULT_BUDGET, squared_norms, sq_distance_chunks
from memgen.progress import progress_bar

from .gap import check_tags
from .records import Records

COLUMNS = ("source", "step", "sigma", "sample", "nearest_index", "nearest_distance", "normalized_distance",
           "log_density", "typicality")
CONTROL_COLUMNS = ("sigma", "n", "typicality_median", "ks_reference", "ks_reference_pvalue", "n_val",
                   "val_typicality_median", "val_ks_reference", "val_ks_reference_pvalue", "ks_val", "ks_val_pvalue")


def nearest_and_log_density(x: torch.Tensor, y: torch.Tensor, y_sqnorm: torch.Tensor, sigma: float, *,
                            budget: int = DEFAULT_BUDGET):
    """For flattened ``x`` ``[B, d]`` and ``y`` ``[n, d]``: ``(min_i ||x - y_i||^2, argmin, log p_sigma(x))``.

    ``log p_sigma`` is the log-density of ``(1/n) sum_i N(y_i, sigma^2 I)`` (formula in the module doc).
    """
    coef = -0.5 / sigma ** 2
    best = arg = lse = None
    for j0, j1, d2 in sq_distance_chunks(x, y, y_sqnorm, budget=budget, temporaries=2):
        v, i = d2.min(1)
        chunk_lse = torch.logsumexp(d2.mul_(coef), 1)
        if best is None:
            best, arg, lse = v, i + j0, chunk_lse
        else:
            better = v < best
            best, arg = torch.where(better, v, best), torch.where(better, i + j0, arg)
            lse = torch.logaddexp(lse, chunk_lse)
    d = x.shape[1]
    return best, arg, lse - math.log(y.shape[0]) - 0.5 * d * math.log(2 * math.pi * sigma ** 2)


def is_trajectory(obj) -> bool:
    """Whether ``obj`` looks like a :class:`memgen.Trajectory` (has states ``x`` and noise levels ``sigma``)."""
    return hasattr(obj, "x") and hasattr(obj, "sigma")


def trajectory_states(trajectory, dtype: torch.dtype, event_shape=None):
    """Validated ``(x [T+1, B, *shape], sigma [T+1] float64)`` of a trajectory."""
    if not is_trajectory(trajectory):
        raise TypeError(f"trajectory: expected a memgen.Trajectory (x [T+1, B, *shape], sigma [T+1]),"
                        f" got {type(trajectory).__name__}")
    x = as_tensor(trajectory.x, "trajectory.x", dtype=dtype)
    sig = as_tensor(trajectory.sigma, "trajectory.sigma", dtype=torch.float64).reshape(-1)
    if x.dim() < 3 or x.shape[0] != sig.shape[0]:
        raise ValueError(f"trajectory: expected x [T+1, B, *shape] and sigma [T+1], got x {tuple(x.shape)}"
                         f" and sigma {tuple(sig.shape)}")
    if event_shape is not None and tuple(x.shape[2:]) != tuple(event_shape):
        raise ValueError(f"trajectory: states of shape {tuple(x.shape[2:])} do not match the training points"
                         f" {tuple(event_shape)}")
    if bool((sig < 0).any()):
        raise ValueError("trajectory.sigma: noise levels must be >= 0")
    return x, sig


def trajectory_distances(trajectory, train, *, val=None, n_val: int | None = None, n_reference: int = 1000,
                         seed: int = 0, dtype: torch.dtype = torch.float64, budget: int = DEFAULT_BUDGET,
                         tags: dict | None = None, progress: bool = True) -> Records:
    """Nearest-training-point distance and typicality of every state of a trajectory (see module doc).

    Args:
        trajectory: a :class:`memgen.Trajectory` (``x`` ``[T+1, B, *shape]``, ``sigma`` ``[T+1]``).
        train: the training points ``[n, *shape]`` the model was built or trained on.
        val: optional held-out points ``[m, *shape]`` of the same distribution: the validation control
            (noisy validation points measured at every sigma of the trajectory, rows ``source='validation'``).
        n_val: noisy validation points per sigma (default: the trajectory's batch size ``B``).
        n_reference: reference noisy training samples per sigma for the typicality percentile.
        seed: seed of the reference samples and of the validation control (the same draws at every sigma).
        dtype: computation dtype (float64 default).
        tags: columns added to every row (e.g. the model's name).

    Returns one row per (source, step with sigma > 0, sample): ``source, step, sigma, sample, n_reference,
    nearest_index, nearest_distance, normalized_distance, log_density, typicality`` (percentile in
    [0, 100]), plus tags. Summarize the control with :func:`typicality_control`.
    """
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    tags = check_tags(tags, COLUMNS)
    n_reference = integer(n_reference, "n_reference")
    seed, budget = integer(seed, "seed", 0), integer(budget, "budget")
    y = as_points(train, "train", dtype=dtype)
    x, sig = trajectory_states(trajectory, dtype, y.shape[1:])
    flat = y.reshape(y.shape[0], -1)
    center = flat.mean(0)
    flat = flat - center
    ysq = squared_norms(flat)
    d = flat.shape[1]
    g = torch.Generator().manual_seed(int(seed))
    ref_idx = torch.randint(0, flat.shape[0], (n_reference,), generator=g)
    ref_noise = torch.randn(n_reference, d, generator=g, dtype=dtype)
    sources = [("trajectory", None)]
    if val is not None:
        v = as_points(val, "val", dtype=dtype)
        if tuple(v.shape[1:]) != tuple(y.shape[1:]):
            raise ValueError(f"val: points of shape {tuple(v.shape[1:])} do not match the training points"
                             f" {tuple(y.shape[1:])}")
        n_val = x.shape[1] if n_val is None else integer(n_val, "n_val")
        vflat = v.reshape(v.shape[0], -1) - center
        val_idx = torch.randint(0, vflat.shape[0], (n_val,), generator=g)
        sources.append(("validation", (vflat[val_idx], torch.randn(n_val, d, generator=g, dtype=dtype))))
    rows = Records()
    for t in progress_bar(range(len(sig)), enabled=progress, desc="trajectory distances", leave=False):
        s = float(sig[t])
        if s <= 0:
            continue
        for source, control in sources:
            states = x[t].reshape(x.shape[1], -1) - center if control is None else control[0] + s * control[1]
            query = torch.cat([states, flat[ref_idx] + s * ref_noise])
            d2, arg, logp = nearest_and_log_density(query, flat, ysq, s, budget=budget)
            ref = np.sort(logp[states.shape[0]:].cpu().numpy())
            lp = logp[:states.shape[0]].cpu().numpy()
            pct = 50.0 * (np.searchsorted(ref, lp, "left") + np.searchsorted(ref, lp, "right")) / n_reference
            dist = d2[:states.shape[0]].sqrt().cpu().numpy()
            for b in range(states.shape[0]):
                rows.append({**tags, "source": source, "step": t, "sigma": s, "sample": b, "n_reference": n_reference,
                             "nearest_index": int(arg[b]), "nearest_distance": float(dist[b]),
                             "normalized_distance": float(dist[b] / (s * math.sqrt(d))),
                             "log_density": float(lp[b]), "typicality": float(pct[b])})
    return rows


def _against_reference(percentiles: np.ndarray, m: int) -> tuple[float, float]:
    """``(KS_ref, p)``: the statistic ``sup_u |F(u) - u|`` of ``n`` percentiles read off ``m`` reference draws,
    and its two-sample p-value ``P(D_{n_eff} > KS_ref)``, ``n_eff = n m / (n + m)`` (module doc)."""
    from scipy import stats

    n = percentiles.size
    statistic = float(stats.kstest(percentiles, "uniform").statistic)
    return statistic, float(stats.kstwo.sf(statistic, max(1, round(n * m / (n + m)))))


def typicality_control(rows) -> Records:
    """Per sigma: the states and the validation control against the noisy-training reference and each other.

    ``rows``: the output of :func:`trajectory_distances` for ONE model. Returns one row per sigma (largest
    first) with ``typicality_median``, ``ks_reference`` (one-sample KS statistic of the states' percentiles
    against U(0, 1); 0 for states distributed like noisy training data) and its p-value; with a
    validation control (``val`` given), the same for it (``val_*``) and ``ks_val``, the two-sample KS
    statistic between the log-densities of the states and of the validation control, with its p-value
    (these are None without one).
    """
    from scipy import stats

    rows = Records(rows)
    if not rows:
        raise ValueError("rows: empty; expected the output of trajectory_distances")
    out = Records()
    for s in sorted({float(r["sigma"]) for r in rows}, reverse=True):
        traj = Records(r for r in rows if r["sigma"] == s and r.get("source", "trajectory") == "trajectory")
        ctrl = rows.where(sigma=s, source="validation")
        tp = traj.column("typicality").astype(float) / 100
        kt = _against_reference(tp, int(traj[0]["n_reference"]))
        row = dict.fromkeys(CONTROL_COLUMNS)
        row.update({"sigma": s, "n": len(traj), "typicality_median": float(np.median(tp) * 100),
                    "ks_reference": kt[0], "ks_reference_pvalue": kt[1], "n_val": len(ctrl)})
        if ctrl:
            vp = ctrl.column("typicality").astype(float) / 100
            kv = _against_reference(vp, int(ctrl[0]["n_reference"]))
            kx = stats.ks_2samp(traj.column("log_density").astype(float), ctrl.column("log_density").astype(float))
            row.update({"val_typicality_median": float(np.median(vp) * 100), "val_ks_reference": kv[0],
                        "val_ks_reference_pvalue": kv[1], "ks_val": float(kx.statistic),
                        "ks_val_pvalue": float(kx.pvalue)})
        out.append(row)
    return out


def parting_sigma(control, *, source: str = "trajectory", alpha: float = 0.01) -> float | None:
    """The sigma from which ``source`` ('trajectory' or 'validation') stays apart from the noisy-training
    reference: the largest sigma whose ``ks_reference`` p-value (:func:`typicality_control`) is below
    ``alpha`` there and at every smaller sigma; None if the states are not apart at the smallest sigma."""
    if source not in ("trajectory", "validation"):
        raise ValueError(f"source: expected 'trajectory' or 'validation', got {source!r}")
    if not 0 < float(alpha) < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    key = "ks_reference_pvalue" if source == "trajectory" else "val_ks_reference_pvalue"
    if any(r[key] is None for r in control):
        raise ValueError(f"control: no {source} rows; call trajectory_distances(..., val=...)")
    parting = None
    for r in sorted(control, key=lambda r: float(r["sigma"])):          # from the smallest sigma up
        if r[key] >= float(alpha):
            break
        parting = float(r["sigma"])
    return parting
