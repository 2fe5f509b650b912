"""Kaiser & Kollmann's claims 1-4: the optimal field localizes, the error-prone toy, the trained gap, trajectories.

Claim 1. Criterion (fixed before the run): the mean effective number of training points ``exp(H)`` of the
optimal denoiser of the 20-point circle's 10 training points, at noisy training and validation points,
has its interval inside [1, 1.5] at sigma 0.01 ((a) training, (b) validation points) and inside
[0.9 n, n] at sigma 100 ((c), (d)); all four are main. Positive control: the optimal denoiser of 10 points
10 apart on a line (one-hot at sigma 0.01, near-uniform at sigma 100). Negative control: the error-prone
denoiser with delta = 10, whose posterior never localizes.

Claim 2. Criterion (fixed before the run): the error-prone denoiser of the training points of the circle (radius
10, training and validation points alternating); unsquared L2 errors with paired noise (validation point i gets
training point i's draws rotated onto it, so a denoiser that treats both alike errs alike on both; a pair is one
unit of the two-level bootstrap); for each setting (the deltas on 20 points, the densities at delta 1.6) the gap
``G = (E_val - E_train) / E_train`` and its fitted peak (:func:`compare.peaks.fitted_peak`), all settings from the
same bootstrap replicates. All five conditions are main: (a) the smallest peak gap over the settings is above
0.01 (a gap of at least 1% of the training error); (b) every peak sigma lies at least one grid step inside the
grid (the smallest log margin is > 0); (c) the peak gap at the largest delta minus at the smallest is below
-0.01; (d) the peak gap of the densest data minus that of the sparsest is below -0.01; (e) the log peak sigma of
the densest data minus that of the sparsest is below 0. Positive control: the same toy at deltas (1, 2) and
densities (12, 20), where every gap is large. Negative control: the error-prone denoiser of all the circle's
points, training and validation: it ignores the split, so it errs alike on both (no gap).

Claim 3. Criterion (fixed before the run): per seed, the novel checkpoint is the last one before the final whose
replicate fraction's upper bound is below 0.1 (samples essentially novel); when a seed has none, the conditions
are not measured (verdict "not run"). At the novel and the final checkpoint: squared per-dimension errors at the
gap's training and validation points (the same draws at both checkpoints), the relative gap and its fitted peak,
all from the same two-level bootstrap replicates (seeds, then points). The data's own scale ``sigma_deloc`` is the
sigma at which the mean ``exp(H)`` of the optimal denoiser of the training set, at noisy training points, reaches 2
(:func:`delocalization_sigma`). All three conditions are main: (a) the peak gap at the last checkpoint minus at the
novel one is above 0.01 (the gap grows with training); (b) the peak gap at the novel checkpoint is above 0.01 (a
gap while samples are novel); (c) ``log(peak sigma at the novel checkpoint / sigma_deloc)`` lies in
[-log 4, log 4] (the peak sits at the data's intermediate scale). Positive control: Kaiser & Kollmann's
error-prone model standing in for training, checkpoints ``SmoothedDenoiser(train, delta)`` with
``delta = sigma_deloc 2^(1 - k)``, k = 0..6, each with the replicate fraction of its own Heun samples. Negative
control: a model that ignores its training set, the Gaussian fitted to the gap's training and validation points,
at two checkpoints (its gap cannot grow).

Claim 4. Criterion (fixed before the run): at the novel checkpoint of claim 3's network (same rule; none: not run),
Heun trajectories from each seed; at the sampler's noise level nearest ``sigma_deloc``, the typicality percentile
``u`` of each state under the noisy training data (:mod:`compare.trajectories`; uniform, mean 1/2, for noisy
training data), and the same for noisy unseen points (half the held-out points). The parting fraction
``f = (1/2 - mean u_states) / (1/2 - mean u_unseen)`` is 0 for states distributed like the noisy training data and
1 for states like unseen data; its interval is the two-level bootstrap (seeds, then states and unseen points).
(a) main: f > 1/2, with an interval narrower than 1; (b) secondary: f < 1.5 (the states are not far less typical
than unseen data, as a broken generator's would be). Positive control: a perfect generator of unseen data, the
optimal denoiser of the other half of the held-out points. Negative control: the memorizer, the optimal denoiser of
the training set, whose sampling states are distributed as the noisy training data at every sigma (f = 0).
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import torch

from compare.bootstrap import bootstrap, weighted_mean
from compare.gap import common_noise, point_errors
from compare.localization import localization
from compare.peaks import fitted_peak
from compare.records import Records, summarize
from compare.replicates import replicates
from compare.trajectories import trajectory_distances
from figures.circle_panels import plot_toy_gaps
from memgen import Trajectory, edm_sigmas, sample
from memgen.data import circle, load
from memgen.noise import log_sigmas
from neural import list_checkpoints, load_denoiser
from toymodels import EmpiricalDenoiser, GaussianDenoiser, SmoothedDenoiser

from .base import (NOVEL_MAX, Claim, Control, Outcome, fmt, fmt_interval, last_novel, new_figure, progress_bar,
                   regime, save_figure, seed_labels, seed_mean)
from .networks import read_metrics, trained
from .verdicts import Condition

PAPER = "Kaiser & Kollmann"



def effective_number(model, ds, sigmas, *, n_draws: int = 50, seed: int = 0) -> Records:
    """``exp(H)`` of ``model``'s posterior over its training points, at noisy training and validation points
    ``y + sigma n`` of the data set ``ds`` (``n_draws`` fixed draws per point, from ``seed`` and ``seed + 1``);
    one row per (point, draw, sigma)."""
    rows = Records()
    for name, pts, s in (("train", ds.train, seed), ("validation", ds.val, seed + 1)):
        z = common_noise(pts.shape[0], pts.shape[1:], n_draws=n_draws, seed=s, dtype=torch.float64)
        x = pts.double().expand(n_draws, *pts.shape).reshape(-1, *pts.shape[1:])
        rows += localization(model, x, sigmas, noise=z.reshape(x.shape), dtype=torch.float64, progress=False,
                             tags={"points": name})
    return rows


def plot_effective_number(ax, rows: Records, n_train: int):
    """Median and quartiles of ``exp(H)`` vs sigma at noisy training and validation points."""
    for name, c in (("train", "crimson"), ("validation", "k")):
        summ = summarize(rows.where(points=name), "sigma", "effective_number")
        s = np.asarray([r["sigma"] for r in summ])
        ax.plot(s, [r["effective_number_q50"] for r in summ], color=c, label=f"noisy {name} points (median)")
        ax.fill_between(s, [r["effective_number_q25"] for r in summ], [r["effective_number_q75"] for r in summ],
                        color=c, alpha=0.2)
    ax.axhline(1, color="0.5", lw=0.7, ls="--")
    ax.axhline(n_train, color="0.5", lw=0.7, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("effective number of training points exp(H)")
    ax.legend(fontsize=7)


def _localizes(model_of, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 1's criterion (module doc) on ``model_of(ds)``, a denoiser with ``posterior`` built on the training
    points of the 20-point circle ``ds``."""
    ds = circle(20)
    n = ds.train.shape[0]
    model = model_of(ds)
    sig = log_sigmas(s["n_sigmas"], 0.01, 100.0)
    per_seed = [effective_number(model, ds, sig, n_draws=s["n_draws"], seed=seed)
                for seed in progress_bar(seeds, 1, progress)]
    nums, conditions = {}, []
    for where, sv in (("smallest", float(sig.min())), ("largest", float(sig.max()))):
        for pts in ("train", "validation"):
            vals = [rows.where(points=pts, sigma=sv).column("effective_number").astype(float) for rows in per_seed]
            nums[f"{pts}_{where}"] = seed_mean(vals, seed=seeds[0])
    for pts, name in (("train", "a"), ("validation", "b")):
        conditions.append(Condition(f"({name})", f"exp(H) at noisy {pts} points at sigma 0.01 is about 1",
                                    *nums[f"{pts}_smallest"], low=1.0, high=1.5))
    for pts, name in (("train", "c"), ("validation", "d")):
        conditions.append(Condition(f"({name})", f"exp(H) at noisy {pts} points at sigma 100 is about n = {n}",
                                    *nums[f"{pts}_largest"], low=0.9 * n, high=n))
    fig, ax = new_figure(figsize=(5, 3.5))
    plot_effective_number(ax, per_seed[0], n)
    save_figure(fig, out)
    small, large = nums["train_smallest"], nums["train_largest"]
    return Outcome(conditions, f"exp(H) {fmt(small[0])} at sigma 0.01, {fmt(large[0])} at sigma 100 (n = {n})",
                   "claim.png", {k: list(v) for k, v in nums.items()})


def localizes(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _localizes(lambda ds: EmpiricalDenoiser(ds.train, dtype=torch.float64), s, out, seeds, progress)


def localizes_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: the optimal denoiser of the circle's training points moved 10 apart on a line, whose
    posterior is exactly one-hot at sigma 0.01 and (diameter 90 << 100) nearly uniform at sigma 100."""
    def model_of(ds):
        line = torch.zeros_like(ds.train, dtype=torch.float64)
        line[:, 0] = 10.0 * torch.arange(ds.train.shape[0]) - 45.0
        return EmpiricalDenoiser(line, dtype=torch.float64)
    return _localizes(model_of, s, out, seeds, progress)


def localizes_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the error-prone denoiser with delta = 10 (the circle's radius), whose posterior is that of
    noise sqrt(sigma^2 + 100) and so never localizes on one training point."""
    return _localizes(lambda ds: SmoothedDenoiser(ds.train, 10.0, dtype=torch.float64), s, out, seeds, progress)


MIN_GAP = 0.01
"""The smallest relative gap, and the smallest change of one, counted as a gap: 1% of the training error."""

N_BOOT = 1000
"""Replicates of the two-level bootstrap of claims 2-4."""


def joint_bootstrap(statistic, sizes, clusters, *, seed: int) -> dict:
    """``{name: (estimate, lo, hi)}`` of every number of ``statistic(*weights) -> {name: [r]}``, all from the same
    two-level bootstrap replicates (:func:`compare.bootstrap.bootstrap`, ``clusters``: each unit's seed), so a
    difference of two numbers computed inside ``statistic`` is a joint statistic with its own interval."""
    names = []

    def stacked(*weights):
        numbers = statistic(*weights)
        names[:] = list(numbers)
        return np.stack([np.asarray(numbers[k], dtype=np.float64) for k in names], -1)

    est, lo, hi = bootstrap(stacked, *sizes, n_boot=N_BOOT, seed=seed, clusters=clusters)
    return {k: (float(est[i]), float(lo[i]), float(hi[i])) for i, k in enumerate(names)}


def gap_peaks(w_train, w_val, e_train, e_val, sigmas):
    """``(log sigma*, G*)``, each ``[r, C]``: the fitted peaks (:func:`compare.peaks.fitted_peak`) of the ``C`` gap
    curves ``G_c = (mean_w e_val[:, c] - mean_w e_train[:, c]) / mean_w e_train[:, c]``, for per-unit errors
    ``[n, C, S]`` on the grid ``sigmas`` and resampling weights ``[r, n]`` of the training and validation units."""
    mt, mv = weighted_mean(w_train, e_train), weighted_mean(w_val, e_val)
    with np.errstate(divide="ignore", invalid="ignore"):
        where, height = fitted_peak(sigmas, (mv - mt) / mt)
    return np.log(where), height


def _interval(q: tuple) -> str:
    return f"{fmt(q[0])} {fmt_interval(*q[1:])}"


# Claim 2: the error-prone toy.

DENSITY_DELTA = 1.6
"""The delta of the density comparison (the paper's)."""

TOY_POSITIVE = dict(deltas=(1.0, 2.0), densities=(12, 20))
"""Positive control of claim 2: smaller deltas and sparser data, where every gap is large."""


def paired_noise(ds, n_draws: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 draws ``[n_draws, m, 2]`` for the ``m`` training points of the circle ``ds`` (from ``seed``) and for its
    ``m`` validation points: validation point i gets training point i's draws rotated by the angle that carries
    training point i onto it, so a model that treats both alike (rotation-equivariant) errs alike on both."""
    train, val = ds.train.double(), ds.val.double()
    if train.shape != val.shape or tuple(train.shape[1:]) != (2,):
        raise ValueError(f"ds: expected as many training as validation points in 2-D, got shapes "
                         f"{tuple(train.shape)} and {tuple(val.shape)}")
    z = common_noise(train.shape[0], (2,), n_draws=n_draws, seed=seed, dtype=torch.float64)
    angle = torch.atan2(val[:, 1], val[:, 0]) - torch.atan2(train[:, 1], train[:, 0])
    c, s = angle.cos(), angle.sin()
    return z, torch.stack([c * z[..., 0] - s * z[..., 1], s * z[..., 0] + c * z[..., 1]], -1)


def paired_errors(model, ds, sigmas, *, n_draws: int, seed: int) -> np.ndarray:
    """Unsquared errors ``[m, 2, S]`` of ``model`` on the pairs (training point i, validation point i) of the circle
    ``ds``, each the mean over its :func:`paired_noise` draws (:func:`compare.gap.point_errors`)."""
    zt, zv = paired_noise(ds, n_draws, seed)
    kw = dict(squared=False, dtype=torch.float64, progress=False)
    return np.stack([point_errors(model, ds.train, sigmas, noise=zt, **kw),
                     point_errors(model, ds.val, sigmas, noise=zv, **kw)], 1)


def toy_settings(s: dict) -> dict:
    """``{n_points: [deltas]}``: the delta sweep on the 20-point circle and the densities at :data:`DENSITY_DELTA`."""
    if len(set(s["deltas"])) < 2 or len(set(s["densities"])) < 2:
        raise ValueError(f"settings: expected at least two deltas and two densities, got {s['deltas']} and "
                         f"{s['densities']}")
    out = {20: list(s["deltas"])}
    for n in s["densities"]:
        out.setdefault(n, [])
        if DENSITY_DELTA not in out[n]:
            out[n].append(DENSITY_DELTA)
    return out


def _errorprone(model_of, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 2's criterion (module doc) on ``model_of(ds, delta)``, a denoiser of the circle ``ds``."""
    sig = log_sigmas(s["n_sigmas"], 0.05, 50.0).numpy()
    groups = toy_settings(s)
    errors = {n: [] for n in groups}                      # per circle: one [pairs, deltas, 2, S] per seed
    for seed in progress_bar(seeds, 2, progress):
        for n, deltas in groups.items():
            ds = circle(n)
            errors[n].append(np.stack([paired_errors(model_of(ds, d), ds, sig, n_draws=s["n_draws"], seed=seed)
                                       for d in deltas], 1))
    values = {n: np.concatenate(e) for n, e in errors.items()}
    ends = (math.log(sig[1]), math.log(sig[-2]))          # one grid step inside each end
    d_lo, d_hi = (20, min(s["deltas"])), (20, max(s["deltas"]))
    sparse, dense = (min(s["densities"]), DENSITY_DELTA), (max(s["densities"]), DENSITY_DELTA)

    def statistic(*weights):
        peaks = {}
        for w, (n, deltas) in zip(weights, groups.items()):
            ls, h = gap_peaks(w, w, values[n][:, :, 0], values[n][:, :, 1], sig)   # a pair is one unit
            peaks.update({(n, d): (ls[:, j], h[:, j]) for j, d in enumerate(deltas)})
        nums = {f"{q} n={n} delta={d:g}": v for (n, d), p in peaks.items() for q, v in zip(("log_sigma", "gap"), p)}
        return nums | {"smallest_gap": np.min([h for _, h in peaks.values()], 0),
                       "margin": np.min([np.minimum(ls - ends[0], ends[1] - ls) for ls, _ in peaks.values()], 0),
                       "delta_effect": peaks[d_hi][1] - peaks[d_lo][1],
                       "density_gap": peaks[dense][1] - peaks[sparse][1],
                       "density_sigma": peaks[dense][0] - peaks[sparse][0]}

    q = joint_bootstrap(statistic, [v.shape[0] for v in values.values()],
                        [seed_labels([e.shape[0] for e in errors[n]]) for n in groups], seed=seeds[0])
    conditions = [
        Condition("(a)", f"smallest peak gap over the settings (a gap: above {MIN_GAP:g})", *q["smallest_gap"],
                  low=MIN_GAP),
        Condition("(b)", "smallest log distance of a peak sigma from one grid step inside the grid's ends (peaks "
                  "at intermediate sigma: > 0)", *q["margin"], low=0.0),
        Condition("(c)", f"peak gap at delta {d_hi[1]:g} minus at delta {d_lo[1]:g} (20 points)", *q["delta_effect"],
                  high=-MIN_GAP),
        Condition("(d)", f"peak gap with {dense[0]} points minus with {sparse[0]} (delta {DENSITY_DELTA:g})",
                  *q["density_gap"], high=-MIN_GAP),
        Condition("(e)", f"log peak sigma with {dense[0]} points minus with {sparse[0]}", *q["density_sigma"],
                  high=0.0)]
    fig, ax = new_figure(figsize=(6, 4))
    plot_toy_gaps(ax, sig, {f"n = {n}, delta = {d:g}": _shown_peak(values[n][:, j], q, f"n={n} delta={d:g}")
                            for n, deltas in groups.items() for j, d in enumerate(deltas)})
    save_figure(fig, out)
    gap = {key: q[f"gap n={key[0]} delta={key[1]:g}"][0] for key in (d_lo, d_hi)}
    where = {key: math.exp(q[f"log_sigma n={key[0]} delta={key[1]:g}"][0]) for key in (sparse, dense)}
    return Outcome(conditions, f"peak gap {fmt(gap[d_lo])} (delta {d_lo[1]:g}) -> {fmt(gap[d_hi])} (delta "
                   f"{d_hi[1]:g}); peak sigma {fmt(where[sparse])} (n = {sparse[0]}) -> {fmt(where[dense])} "
                   f"(n = {dense[0]})", "claim.png", {k: list(v) for k, v in q.items()})


def _shown_peak(err: np.ndarray, q: dict, key: str) -> dict:
    """:func:`plot_toy_gaps`'s entry of one setting: the gap curve of all pairs ``err`` ``[m, 2, S]`` and its peak."""
    mt, mv = err[:, 0].mean(0), err[:, 1].mean(0)
    ls = q[f"log_sigma {key}"]
    return {"curve": ((mv - mt) / mt).tolist(), "sigma_peak": math.exp(ls[0]), "sigma_peak_lo": math.exp(ls[1]),
            "sigma_peak_hi": math.exp(ls[2]), "gap_peak": q[f"gap {key}"][0]}


def _smoothed_of_train(ds, delta):
    return SmoothedDenoiser(ds.train, delta, dtype=torch.float64)


def errorprone(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _errorprone(_smoothed_of_train, s, out, seeds, progress)


def errorprone_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: the same toy at the smaller deltas and sparser data of :data:`TOY_POSITIVE`."""
    return _errorprone(_smoothed_of_train, s | TOY_POSITIVE, out, seeds, progress)


def errorprone_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the error-prone denoiser of all the circle's points, training and validation: it ignores
    the split, so with :func:`paired_noise` it errs alike on both (no gap at any delta or density)."""
    return _errorprone(lambda ds, d: SmoothedDenoiser(ds.x, d, dtype=torch.float64), s, out, seeds, progress)


# Claims 3 and 4: trained networks, judged at a checkpoint whose samples are novel.

DELOC_LEVEL = 2.0
"""The data's own scale ``sigma_deloc``: where the mean ``exp(H)`` of the optimal denoiser at noisy training points
reaches this (the posterior no longer sits on one training point)."""

PEAK_FACTOR = 4.0
"""Claim 3 (c): the gap peak lies within this factor of ``sigma_deloc``."""

N_REFERENCE = 500
"""Reference noisy training samples per sigma for the typicality percentiles of claim 4."""


def delocalization_sigma(train, *, level: float = DELOC_LEVEL, n_draws: int = 4, seed: int = 0,
                         n_grid: int = 101) -> float:
    """``sigma_deloc``: the smallest sigma at which the mean ``exp(H)`` of the optimal (empirical) denoiser's posterior
    at the noisy training points ``y_i + sigma n_ik`` (``n_draws`` fixed draws per point from ``seed``) reaches
    ``level``; log-linear interpolation on ``n_grid`` log-spaced sigmas from 1e-3 to 10 times the data's RMS radius
    ``sqrt(mean_i ||y_i - mean||^2)``."""
    y = torch.as_tensor(train, dtype=torch.float64)
    if not 1.0 < float(level) < y.shape[0]:
        raise ValueError(f"level: expected an effective number in (1, n = {y.shape[0]}), got {level!r}")
    flat = y.reshape(y.shape[0], -1)
    rms = float((flat - flat.mean(0)).square().sum(1).mean().sqrt())
    grid = rms * np.geomspace(1e-3, 10.0, int(n_grid))
    z = common_noise(y.shape[0], y.shape[1:], n_draws=n_draws, seed=seed, dtype=torch.float64).reshape(-1, *y.shape[1:])
    s = torch.as_tensor(grid).repeat_interleave(z.shape[0])                  # every state at every sigma, one call
    x = y.repeat(n_draws, *[1] * (y.dim() - 1)).repeat(grid.size, *[1] * (y.dim() - 1))
    x = x + s.reshape(-1, *[1] * (y.dim() - 1)) * z.repeat(grid.size, *[1] * (y.dim() - 1))
    entropy = EmpiricalDenoiser(y, dtype=torch.float64).posterior(x, s).entropy
    mean = entropy.exp().reshape(grid.size, -1).mean(1).numpy()
    j = int(np.argmax(mean >= level))
    if j == 0:
        raise ValueError(f"train: mean exp(H) is {mean[0]:.3g} >= {level} already at sigma {grid[0]:.3g} "
                         f"(or never reaches it)")
    t = (level - mean[j - 1]) / (mean[j] - mean[j - 1])
    return float(np.exp(np.log(grid[j - 1]) + t * np.log(grid[j] / grid[j - 1])))


def network_overrides(s: dict) -> dict:
    """The config values (``{'section.key': value}``) of the network of claims 3 and 4."""
    return {"data.name": s["data"], "data.params": s["data_params"], "model.preset": s["preset"],
            "train.steps": s["steps"], "train.batch_size": s["batch_size"], "train.lr": s["lr"],
            "train.first_checkpoint": 10, "train.checkpoints_per_decade": 4, "train.save_every": s["steps"],
            "measure.probes": 32, "measure.sigmas": 8, "measure.samples": s["samples"],
            "measure.batch_size": s["samples"], "measure.metrics": ["gap", "replicates", "sliced_wasserstein"]}


FRACTION = ("replicate_fraction", "replicate_fraction_lo", "replicate_fraction_hi")


def planned_runs(s: dict, seeds) -> list:
    """``[(values, seed)]`` of the networks claims 3 and 4 train (:attr:`Claim.runs`): one per seed."""
    return [(network_overrides(s), seed) for seed in seeds]


def _novel_and_last(rows) -> tuple:
    """Steps of the novel checkpoint (the last one before the final whose replicate fraction's upper bound is
    below :data:`NOVEL_MAX`; None when there is none) and of the final one, from rows with ``step`` and
    ``replicate_fraction_hi``."""
    return last_novel(rows[:-1]), rows[-1]["step"]


def _regime_rows(s: dict, seed: int, rows, used: dict) -> list:
    """One regime row per checkpoint ``used`` (``{'novel': step, ...}``; None: not found, no row)."""
    by = {r["step"]: r for r in rows}
    return [{"data": s["data"], "seed": int(seed), "setting": by[step].get("setting", s["preset"]),
             "checkpoint": name, "step": int(step), "replicate_fraction": float(by[step]["replicate_fraction"]),
             "regime": regime(by[step]["replicate_fraction_lo"], by[step]["replicate_fraction_hi"])}
            for name, step in used.items() if step is not None]


def _network_checkpoints(s: dict, out: Path, seed: int):
    """``(rows, load)``: the trained network's metric rows (step, replicate fraction with its interval) and
    ``load(step)``, its checkpoint at a step (EMA weights, CPU). Runs live in ``out.parent / 'runs'``."""
    run = trained(out.parent / "runs", network_overrides(s), seed)
    paths = dict(list_checkpoints(run))
    return read_metrics(run), lambda step: load_denoiser(paths[step], ema=True, device="cpu")


def _sampled_checkpoints(models: list, labels: list, train, s: dict, seed: int):
    """``(rows, load)`` of a series of closed-form models standing in for checkpoints (step k: ``models[k]``), each
    row with the replicate fraction of ``s['samples']`` Heun samples (``s['sample_steps']``, noise from ``seed``)
    against ``train`` (:func:`compare.replicates.replicates`)."""
    noise = torch.randn(s["samples"], *train.shape[1:], generator=torch.Generator().manual_seed(seed))
    rows = []
    for k, (model, label) in enumerate(zip(models, labels)):
        x = sample(model, noise, edm_sigmas(s["sample_steps"]))
        summary = replicates(x, train, seed=seed, progress=False).summary[0]
        rows.append({"step": k, "setting": label} | {q: float(summary[q]) for q in FRACTION})
    return rows, lambda step: models[step]


def _data(s: dict):
    return load(s["data"], **s["data_params"])


@functools.lru_cache(maxsize=8)
def _deloc_of(name: str, params: str) -> float:
    return delocalization_sigma(load(name, **json.loads(params)).train)


def _sigma_deloc(s: dict) -> float:
    """:func:`delocalization_sigma` of the training set of the settings' data (computed once per data set)."""
    return _deloc_of(s["data"], json.dumps(s["data_params"], sort_keys=True))


def _split(s: dict):
    data = _data(s)
    return data.train[:s["gap_points"]], data.val[:s["gap_points"]]


def checkpoint_errors(models, train, val, sigmas, *, n_draws: int, seed: int):
    """Squared per-dimension errors ``([n_train, C, S], [n_val, C, S])`` of the ``C`` models at the points ``train``
    and ``val``, the same ``n_draws`` draws per point (from ``seed``) for every model and sigma."""
    g = torch.Generator().manual_seed(int(seed))
    nt = torch.randn(n_draws, *train.shape, generator=g)
    nv = torch.randn(n_draws, *val.shape, generator=g)
    per = [(point_errors(m, train, sigmas, noise=nt, progress=False), point_errors(m, val, sigmas, noise=nv,
                                                                                   progress=False)) for m in models]
    return np.stack([p[0] for p in per], 1), np.stack([p[1] for p in per], 1)


def _gap_growth(checkpoints_of, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 3's criterion (module doc) on ``checkpoints_of(s, out, seed) -> (rows, load)`` (a training run, or a
    series of models standing in for one)."""
    sig = log_sigmas(s["n_sigmas"], 0.01, 20.0).numpy()
    train_pts, val_pts = _split(s)
    deloc = _sigma_deloc(s)
    errors, regimes, missing = [], [], []
    for seed in progress_bar(seeds, 3, progress):
        rows, load_step = checkpoints_of(s, out, seed)
        novel, last = _novel_and_last(rows)
        regimes += _regime_rows(s, seed, rows, {"novel": novel, "last": last})
        if novel is None:
            missing.append(seed)
            continue
        errors.append(checkpoint_errors([load_step(novel), load_step(last)], train_pts, val_pts, sig,
                                        n_draws=s["gap_draws"], seed=seed))
    names = ("novel_log_sigma", "novel_gap", "last_log_sigma", "last_gap", "growth", "novel_log_ratio")
    if missing:                         # judged on every seed or not at all
        q = dict.fromkeys(names, (math.nan,) * 3)
    else:
        et, ev = (np.concatenate([e[i] for e in errors]) for i in (0, 1))

        def statistic(wt, wv):
            ls, h = gap_peaks(wt, wv, et, ev, sig)
            return dict(zip(names, (ls[:, 0], h[:, 0], ls[:, 1], h[:, 1], h[:, 1] - h[:, 0],
                                    ls[:, 0] - math.log(deloc))))

        q = joint_bootstrap(statistic, (et.shape[0], ev.shape[0]),
                            [seed_labels([e[i].shape[0] for e in errors]) for i in (0, 1)], seed=seeds[0])
    bound = math.log(PEAK_FACTOR)
    conditions = [
        Condition("(a)", "peak gap at the last checkpoint minus at the novel one (grows with training)", *q["growth"],
                  low=MIN_GAP),
        Condition("(b)", f"peak gap at the novel checkpoint (no replicates: upper bound < {NOVEL_MAX:g})",
                  *q["novel_gap"], low=MIN_GAP),
        Condition("(c)", f"log(peak sigma at the novel checkpoint / sigma_deloc = {deloc:.3g}) (within a factor "
                  f"{PEAK_FACTOR:g})", *q["novel_log_ratio"], low=-bound, high=bound)]
    figure = None
    if errors:
        figure = _plot_growth(sig, errors[0], deloc, out)
    nums = {k: list(v) for k, v in q.items()} | {"sigma_deloc": deloc, "seeds_without_novel_checkpoint": missing}
    return Outcome(conditions, f"peak gap {_interval(q['novel_gap'])} at the novel checkpoint -> "
                   f"{_interval(q['last_gap'])} at the last; novel peak at {fmt(math.exp(q['novel_log_sigma'][0]))} "
                   f"(sigma_deloc {fmt(deloc)})" + (f"; no novel checkpoint in seed(s) {missing}" if missing else ""),
                   figure, nums, regimes)


def _plot_growth(sig, errors, deloc: float, out: Path) -> str:
    """The first seed's gap curves at the novel and last checkpoints, ``sigma_deloc`` and the band of claim 3 (c)."""
    et, ev = errors
    fig, ax = new_figure(figsize=(6, 4))
    for c, (name, ls) in enumerate((("novel", "--"), ("last", "-"))):
        mt, mv = et[:, c].mean(0), ev[:, c].mean(0)
        ax.plot(sig, (mv - mt) / mt, ls=ls, label=f"{name} checkpoint")
    ax.axvline(deloc, color="0.3", lw=0.8, label="sigma_deloc")
    ax.axvspan(deloc / PEAK_FACTOR, deloc * PEAK_FACTOR, color="0.5", alpha=0.15,
               label=f"within a factor {PEAK_FACTOR:g}")
    ax.set_yscale("symlog", linthresh=0.1)
    return save_figure(fig, out, xlabel="sigma", ylabel="gap (E_val - E_train) / E_train")


def trained_gap(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _gap_growth(_network_checkpoints, s, out, seeds, progress)


SMOOTHED_SERIES = 7
"""Claim 3's positive control: smoothed denoisers with delta = sigma_deloc * 2^(1 - k), k = 0..6."""


def _smoothed_series(s: dict, out: Path, seed: int):
    train = _data(s).train
    deltas = _sigma_deloc(s) * 2.0 ** (1 - np.arange(SMOOTHED_SERIES))
    return _sampled_checkpoints([SmoothedDenoiser(train, float(d)) for d in deltas],
                                [f"smoothed, delta {d:.3g}" for d in deltas], train, s, seed)


def _ignoring_series(s: dict, out: Path, seed: int):
    model = GaussianDenoiser.fit(torch.cat(_split(s)))
    return _sampled_checkpoints([model, model], ["Gaussian of train+val"] * 2, _data(s).train, s, seed)


def trained_gap_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: Kaiser & Kollmann's error-prone model as a stand-in for training, the checkpoints
    ``SmoothedDenoiser(train, delta)`` with delta halving from 2 sigma_deloc (early, novel) to sigma_deloc / 32."""
    return _gap_growth(_smoothed_series, s, out, seeds, progress)


def trained_gap_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: a model that ignores its training set, the Gaussian fitted on the gap's training and
    validation points, at both checkpoints: its gap does not grow."""
    return _gap_growth(_ignoring_series, s, out, seeds, progress)


def _states_like_unseen(model_of, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 4's criterion (module doc) on ``model_of(s, out, seed) -> (model or None, regime rows)``."""
    data = _data(s)
    deloc = _sigma_deloc(s)
    sigmas = edm_sigmas(s["sample_steps"])
    t = int(torch.argmin((sigmas[:-1] / deloc).log().abs()))          # the sampler's level nearest sigma_deloc
    control = data.val[1::2]                              # the other half is the positive control's generator
    states, unseen, regimes, missing = [], [], [], []
    for seed in progress_bar(seeds, 4, progress):
        model, rows = model_of(s, out, seed)
        regimes += rows
        if model is None:
            missing.append(seed)
            continue
        noise = torch.randn(s["n_traj"], *data.shape, generator=torch.Generator().manual_seed(seed))
        _, traj = sample(model, noise, sigmas, return_trajectory=True)
        at_t = Trajectory(traj.x[t:t + 1], traj.sigma[t:t + 1], traj.denoised[t:t + 1])
        recs = trajectory_distances(at_t, data.train, val=control, n_reference=N_REFERENCE, seed=seed, progress=False)
        states.append(recs.where(source="trajectory").column("typicality").astype(float) / 100)
        unseen.append(recs.where(source="validation").column("typicality").astype(float) / 100)
    at = float(sigmas[t])
    names = ("states", "unseen", "parting")
    if missing:                         # judged on every seed or not at all
        q = dict.fromkeys(names, (math.nan,) * 3)
    else:
        us, uv = np.concatenate(states), np.concatenate(unseen)

        def statistic(ws, wv):
            ms, mv = weighted_mean(ws, us), weighted_mean(wv, uv)
            with np.errstate(divide="ignore", invalid="ignore"):
                return {"states": ms, "unseen": mv, "parting": (0.5 - ms) / (0.5 - mv)}

        q = joint_bootstrap(statistic, (us.size, uv.size), [seed_labels([u.size for u in states]),
                                                              seed_labels([u.size for u in unseen])], seed=seeds[0])
    conditions = [
        Condition("(a)", f"parting of the states from the noisy training data at sigma {at:.3g} (nearest sigma_deloc"
                  f" = {deloc:.3g}), as a fraction of unseen data's (more than half)", *q["parting"], low=0.5,
                  max_width=1.0),
        Condition("(b)", "the same fraction is below 1.5 (the states are not far less typical than unseen data)",
                  *q["parting"], high=1.5, main=False)]
    figure = _plot_typicality(states, unseen, at, out) if states else None
    nums = {k: list(v) for k, v in q.items()} | {"sigma": at, "sigma_deloc": deloc,
                                                 "seeds_without_novel_checkpoint": missing}
    return Outcome(conditions, f"at sigma {fmt(at)}: mean typicality of the states {_interval(q['states'])}, of noisy "
                   f"unseen points {_interval(q['unseen'])} (noisy training data: 0.5); parting "
                   f"{_interval(q['parting'])}" + (f"; no novel checkpoint in seed(s) {missing}" if missing else ""),
                   figure, nums, regimes)


def _plot_typicality(states, unseen, at: float, out: Path) -> str:
    """Histograms of the typicality percentiles (all seeds) of the states and of noisy unseen points at ``at``;
    noisy training data would be uniform."""
    fig, ax = new_figure(figsize=(6, 4))
    bins = np.linspace(0, 1, 21)
    ax.hist(np.concatenate(states), bins, density=True, histtype="step", label="sampling states")
    ax.hist(np.concatenate(unseen), bins, density=True, histtype="step", ls="--", label="noisy unseen points")
    ax.axhline(1, color="0.5", lw=0.7, label="noisy training data")
    return save_figure(fig, out, xlabel=f"typicality under the noisy training data at sigma {at:.3g}",
                       ylabel="density", log_x=False)


def _novel_network(s: dict, out: Path, seed: int):
    rows, load_step = _network_checkpoints(s, out, seed)
    novel, _ = _novel_and_last(rows)
    return (None if novel is None else load_step(novel)), _regime_rows(s, seed, rows, {"novel": novel})


def trajectories(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _states_like_unseen(_novel_network, s, out, seeds, progress)


def trajectories_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: a perfect generator of unseen data, the optimal denoiser of half the held-out points (the
    other half is the unseen-data reference)."""
    return _states_like_unseen(lambda s, out, seed: (EmpiricalDenoiser(_data(s).val[0::2]), []), s, out, seeds,
                               progress)


def trajectories_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the memorizer, the optimal denoiser of the training set, whose sampling states are
    distributed as the noisy training data at every sigma."""
    return _states_like_unseen(lambda s, out, seed: (EmpiricalDenoiser(_data(s).train), []), s, out, seeds, progress)


_NET_QUICK = dict(data="gmm", data_params=dict(n=556, d=16, n_train=32), preset="mlp-small", steps=300,
                  batch_size=32, lr=2e-3, samples=128, gap_points=32, gap_draws=16, n_sigmas=13, sample_steps=18,
                  n_traj=256)
_NET_CPU = dict(data="digits", data_params=dict(n=1064, n_train=64, seed=0), preset="mlp-medium", steps=6000,
                batch_size=64, lr=1e-3, samples=256, gap_points=64, gap_draws=8, n_sigmas=25, sample_steps=18,
                n_traj=256)
_NET_PAPER = dict(data="mondrian", data_params=dict(n=4000, size=32, n_train=2000), preset="yoon-unet-128",
                  steps=200000, batch_size=128, lr=2e-4, samples=1000, gap_points=1000, gap_draws=2, n_sigmas=41,
                  sample_steps=18, n_traj=256)

CLAIMS = [
    Claim(1, PAPER, "the optimal denoiser localizes: exp(H) goes from 1 (small sigma) to n (large sigma)",
          "exp(H) = 1 at small sigma, n at large sigma (20-point circle, n = 10)",
          {"quick": dict(n_sigmas=9, n_draws=10), "cpu": dict(n_sigmas=41, n_draws=50),
           "paper": dict(n_sigmas=41, n_draws=200)}, localizes,
          Control("the optimal denoiser of 10 points 10 apart on a line", localizes_positive),
          Control("the error-prone denoiser of the circle with delta = 10 (never localizes)", localizes_negative)),
    Claim(2, PAPER, "error-prone toy: the gap peaks at intermediate sigma; larger delta and denser data shrink it, "
          "denser data move the peak to smaller sigma", "peak at sigma ~ 1-2; shrinks with delta and density",
          {"quick": dict(n_sigmas=13, n_draws=30, deltas=(2.2, 1.2), densities=(16, 30)),
           "cpu": dict(n_sigmas=41, n_draws=500, deltas=(2.2, 1.8, 1.6, 1.2), densities=(16, 20, 30)),
           "paper": dict(n_sigmas=61, n_draws=2000, deltas=(2.2, 2.0, 1.8, 1.6, 1.4, 1.2),
                         densities=(16, 20, 24, 30))}, errorprone,
          Control(f"the same toy at smaller deltas and sparser data, where every gap is large: deltas "
                  f"{TOY_POSITIVE['deltas']}, densities {TOY_POSITIVE['densities']}", errorprone_positive),
          Control("the error-prone denoiser of all the circle's points (ignores the train/validation split: no gap)",
                  errorprone_negative)),
    Claim(3, PAPER, "a trained network's denoising gap grows with training and peaks at intermediate sigma, "
          "and exists while samples are still novel", "gap largest at sigma ~ 1-2, growing with training",
          {"quick": _NET_QUICK, "cpu": _NET_CPU, "paper": _NET_PAPER}, trained_gap,
          Control("checkpoints stood in for by the error-prone model of the training set, delta halving from "
                  "2 sigma_deloc to sigma_deloc / 32", trained_gap_positive),
          Control("a model that ignores its training set (the Gaussian of the gap's training and validation points) "
                  "at every checkpoint", trained_gap_negative),
          planned_runs),
    Claim(4, PAPER, "intermediate sampling states lie outside the noisy training data (like unseen data), so the "
          "training gap does not carry to inference", "qualitative (indirect in the paper)",
          {"quick": _NET_QUICK, "cpu": _NET_CPU, "paper": _NET_PAPER}, trajectories,
          Control("a perfect generator of unseen data (the optimal denoiser of half the held-out points)",
                  trajectories_positive),
          Control("the memorizer: the optimal denoiser of the training set", trajectories_negative),
          planned_runs),
]
