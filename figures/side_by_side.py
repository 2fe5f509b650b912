"""Four denoisers on one split: the optimal, the smoothed, the Gaussian and a trained network, side by side.

One split of Bonnaire et al.'s mixture (two Gaussians at ±1 with unit variance in d = 8; ``n_train``
training points, ``n_val`` fresh validation points). On it:

* optimal: the empirical (fully memorizing) denoiser of the training points (:class:`toymodels.EmpiricalDenoiser`);
* smoothed: Kaiser & Kollmann's error-prone denoiser, the exact denoiser of the training points broadened
  by ``N(0, delta^2 I)`` (:class:`toymodels.SmoothedDenoiser`);
* Gaussian: the linear denoiser of the Gaussian fitted to the training points (:class:`toymodels.GaussianDenoiser`);
* trained: the residual MLP (``mlp-small``, EDM preconditioning) trained on the same points by
  :func:`neural.train` (batch ``min(n, 512)``, Adam), at its last step (EMA weights).

Left: the generalization gap ``G(sigma) = (E_val - E_train) / E_train`` of the squared denoising error per
dimension, with common random numbers (the same noise draws for every model and sigma) and 95% bootstrap
intervals over points (:func:`compare.gap.generalization_gap`). Middle and right: Heun sampling
trajectories from the same seeded noise; per state at noise sigma the nearest-training-point distance in
units of ``sigma sqrt(d)`` and the typicality, the percentile of ``log (1/n) sum_i N(x; y_i, sigma^2 I)``
among real noisy training samples at that sigma (:func:`compare.trajectories.trajectory_distances`; the
grey band: real noisy training samples, uniform percentiles).

The summary gives per model the peak gap and its sigma, the fraction of its samples (the trajectories' end
points) that replicate a training point (``d1 / d2 < 1/3``), and the median distance and typicality of
the trajectories at the smallest sigma.

Expected: the optimal denoiser's gap diverges as sigma -> 0 (it reproduces training points exactly) and its
trajectories stay typical of the noisy training data down to sigma -> 0; the Gaussian's gap is near 0 and
its trajectories leave the noisy training data (typicality -> 0) once sigma is below the data spacing; the
smoothed model sits between (gap bounded, typicality falls below about sigma ~ delta); a trained network
trained past its memorization time moves from the Gaussian-like towards the optimal behaviour.

Run: ``python -m figures.side_by_side --out DIR [--scale cpu|paper]`` (writes ``side_by_side.png``,
``gap.csv``, ``trajectories.csv``, ``summary.json``, ``record.json`` and the training run under ``run/``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from compare.gap import generalization_gap
from compare.records import Records
from compare.replicates import replicates
from figures.script_args import figure_parser
from figures.trajectories import REFERENCE, distance_records, final_summary, plot_distances
from memgen import edm_sigmas, sample
from memgen.data import gmm
from memgen.noise import log_sigmas
from memgen.run_files import atomic_save_figure, atomic_write_json, write_record
from neural import load_config, load_denoiser, train
from toymodels import EmpiricalDenoiser, GaussianDenoiser, SmoothedDenoiser

SCALES = {
    "cpu": dict(n_train=64, n_val=512, steps=12800, n_samples=256, n_draws=8),
    "paper": dict(n_train=512, n_val=4096, steps=400000, n_samples=2000, n_draws=16),
}


def scale_settings(scale: str, changes: dict) -> dict:
    """A copy of ``SCALES[scale]`` with ``changes`` applied (unknown names raise)."""
    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {sorted(SCALES)}, got {scale!r}")
    s = dict(SCALES[scale])
    unknown = sorted(set(changes) - set(s))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a setting of the figure; expected one of {sorted(s)}")
    s.update(changes)
    return s


def split(*, n_train: int = 64, n_val: int = 512, d: int = 8, seed: int = 0):
    """The mixture data set of ``n_train + n_val`` points (seeded split)."""
    return gmm(n_train + n_val, d, n_train=n_train, seed=seed)


def train_network(run_dir, *, n_train: int = 64, n_val: int = 512, d: int = 8, steps: int = 12800, lr: float = 1e-3,
                  seed: int = 0, threads: int = 1, device: str = "auto") -> Path:
    """Train (or resume) the residual MLP on the split of :func:`split` (no measurement during training)."""
    cfg = load_config(None, ["data.name=gmm", f"data.params={{n = {n_train + n_val}, d = {d}, n_train = {n_train},"
                             f" seed = {seed}}}", "model.preset=mlp-small", f"train.steps={steps}",
                             f"train.batch_size={min(n_train, 512)}", f"train.lr={lr}", f"train.seed={seed}",
                             f"train.threads={threads}", f"train.device={device}", "train.progress=false",
                             f"train.save_every={steps}", "measure.enabled=false"])
    return train(cfg, run_dir)


def models(train_points, run_dir, *, delta: float = 0.5) -> dict:
    """``{name: denoiser}``: optimal, smoothed, Gaussian (fitted), trained (last step of ``run_dir``)."""
    return {"optimal": EmpiricalDenoiser(train_points),
            f"smoothed (delta={delta:g})": SmoothedDenoiser(train_points, delta),
            "Gaussian (fitted)": GaussianDenoiser.fit(train_points), "trained MLP": load_denoiser(run_dir)}


def gap_records(models_: dict, train_points, val_points, sigmas, *, n_draws: int = 8, seed: int = 0) -> Records:
    """:func:`compare.gap.generalization_gap` of every model with the same noise draws (``seed``)."""
    rows = Records()
    for name, model in models_.items():
        rows += generalization_gap(model, train_points, val_points, sigmas, n_draws=n_draws, seed=seed, progress=False,
                                   tags={"model": name})
    return rows


def replicate_fractions(models_: dict, train_points, *, n_samples: int = 256, steps: int = 18, seed: int = 0) -> dict:
    """Per model: fraction of its samples (Heun from the seeded noise of the trajectories) that replicate a
    training point, ``d1 / d2 < 1/3`` (:func:`compare.replicates.replicates`), with its 95% interval."""
    noise = torch.randn(n_samples, *train_points.shape[1:], generator=torch.Generator().manual_seed(seed))
    out = {}
    for name, model in models_.items():
        x = sample(model, noise.to(train_points.dtype), edm_sigmas(steps), method="heun")
        row = replicates(x, train_points, seed=seed, progress=False).summary.where(group="all")[0]
        out[name] = {k: row[k] for k in ("replicate_fraction", "replicate_fraction_lo", "replicate_fraction_hi")}
    return out


def plot_gap(ax, rows: Records, colours: dict, *, top: float = 1e4):
    """Relative gap vs sigma per model on a symmetric-log axis cut at ``top`` (a curve that leaves through the
    top diverges: E_train -> 0 where the model returns the training point itself)."""
    for name, c in colours.items():
        sub = rows.where(model=name)
        s = sub.column("sigma").astype(float)
        g, lo, hi = (sub.column(k).astype(float) for k in ("gap", "gap_lo", "gap_hi"))
        ok = np.isfinite(g)
        ax.plot(s[ok], g[ok], color=c, label=name)
        ok &= np.isfinite(lo) & np.isfinite(hi)
        ax.fill_between(s[ok], lo[ok], hi[ok], color=c, alpha=0.18)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_yscale("symlog", linthresh=0.1)
    lows = rows.column("gap_lo").astype(float)
    ax.set_ylim(min(-0.2, 1.5 * lows[np.isfinite(lows)].min()), top)
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("gap (E_val - E_train) / E_train")
    ax.set_title(f"generalization gap of the denoising error (cut at {top:g}: above, E_train -> 0)", fontsize=10)
    ax.legend(fontsize=7)


def peak_gaps(rows: Records) -> dict:
    """Per model: the largest gap over sigma and where (``'inf'`` where E_train = 0 at some sigma)."""
    out = {}
    for name in dict.fromkeys(rows.column("model").tolist()):
        sub = rows.where(model=name)
        g, s = sub.column("gap").astype(float), sub.column("sigma").astype(float)
        k = int(np.nanargmax(np.where(np.isnan(g), -np.inf, g)))
        out[name] = {"peak_gap": float(g[k]) if math.isfinite(g[k]) else "inf", "peak_sigma": float(s[k]),
                     "infinite_below_sigma": float(s[~np.isfinite(g)].max()) if (~np.isfinite(g)).any() else None}
    return out


def side_by_side(out_dir, *, scale: str = "cpu", d: int = 8, delta: float = 0.5, n_sigmas: int = 32,
                 sample_steps: int = 18, seed: int = 0, threads: int = 1, device: str = "auto", progress: bool = True,
                 **overrides):
    """Train the network, measure the four models on one split, plot; returns ``(paths, summary)``.

    ``overrides`` replace the entries of :data:`SCALES` ``[scale]`` (``n_train, n_val, steps, n_samples, n_draws``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = scale_settings(scale, overrides)
    out = Path(out_dir)
    data = split(n_train=p["n_train"], n_val=p["n_val"], d=d, seed=seed)
    run = train_network(out / "run", n_train=p["n_train"], n_val=p["n_val"], d=d, steps=p["steps"], seed=seed,
                        threads=threads, device=device)
    ms = models(data.train, run, delta=delta)
    gaps = gap_records(ms, data.train, data.val, log_sigmas(n_sigmas, 0.002, 80.0), n_draws=p["n_draws"], seed=seed)
    traj = distance_records(ms, data.train, n_samples=p["n_samples"], steps=sample_steps, seed=seed,
                            data=f"gmm d={d}", progress=progress)

    fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    plot_distances(axes[1], axes[2], traj, f"GMM d={d}")
    colours = {line.get_label(): line.get_color() for line in axes[2].get_lines() if line.get_label() != REFERENCE}
    plot_gap(axes[0], gaps, colours)
    fig.suptitle(f"One split: two Gaussians at ±1 in d = {d}, {p['n_train']} training / {p['n_val']} validation "
                 f"points; MLP trained {p['steps']} steps; {p['n_draws']} noise draws per point; Heun "
                 f"{sample_steps} steps, {p['n_samples']} trajectories; seed {seed}", fontsize=10)
    paths = [atomic_save_figure(fig, out / "side_by_side.png", dpi=100)]
    plt.close(fig)
    typical = {k.split(" / ", 1)[1]: v for k, v in final_summary(traj).items()}
    reps = replicate_fractions(ms, data.train, n_samples=p["n_samples"], steps=sample_steps, seed=seed)
    summary = {name: {**peak, **reps[name], "small_sigma_trajectory": typical[name]}
               for name, peak in peak_gaps(gaps).items()}
    summary[REFERENCE] = {"small_sigma_trajectory": typical[REFERENCE]}
    paths += [gaps.to_csv(out / "gap.csv"), traj.to_csv(out / "trajectories.csv"),
              atomic_write_json(out / "summary.json", summary),
              write_record(out, figure="side_by_side", scale=scale, d=d, delta=delta, n_sigmas=n_sigmas,
                           sample_steps=sample_steps, seed=seed, **p)]
    return paths, summary


def main(argv=None) -> int:
    parser = figure_parser("side_by_side", __doc__, SCALES)
    parser.add_argument("--delta", type=float, default=0.5, help="smoothing of the smoothed denoiser")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the training run")
    args = parser.parse_args(argv)
    _, summary = side_by_side(args.out, scale=args.scale, delta=args.delta, seed=args.seed, threads=args.threads)
    for name, v in summary.items():
        t = v["small_sigma_trajectory"]
        peak = (f"peak gap {v['peak_gap']} at sigma {v['peak_sigma']:.3g}; replicates {v['replicate_fraction']:.3f}; "
                if "peak_gap" in v else "")
        print(f"{name:22s} {peak}at sigma {t['sigma']:.3g}: typicality {t['typicality_median']:.1f}%, "
              f"distance/(sigma sqrt d) {t['normalized_distance_median']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
