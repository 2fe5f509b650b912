"""Kaiser & Kollmann's training-time claims on a trained network: the per-sigma gap grows with training, and
sampling trajectories compared with those of the empirical (optimal) denoiser of the same training set.

A U-Net (EDM preconditioning and loss) trains on ``n`` Mondrian images; at every checkpoint of a log-spaced
grid the per-sigma denoising error ``E(sigma) = (1/N) sum_i ||D(y_i + sigma n_i, sigma) - y_i||^2 / d`` is
measured on FIXED training and validation probes with FIXED noise ``n_i`` (the same at every sigma and
every checkpoint: common random numbers), on ``64`` log-spaced sigmas in [0.002, 80]
(:func:`compare.errors.generalization_gap` through :class:`neural.Measurement`). The relative gap is
``G(sigma) = (E_val - E_train) / E_train``, with 95% bootstrap intervals over probes.

Expected (Kaiser & Kollmann, claim 1): G grows with training and peaks at an intermediate sigma (at large
sigma both errors are the prior's, at small sigma both are ``~ sigma^2``).

Then the final network and the empirical denoiser of its training set (:class:`toymodels.EmpiricalDenoiser`,
which reproduces training points) sample from the same seeded noise (Heun, EDM grid), and every state at
sigma is scored by its nearest-training-point distance ``/ (sigma sqrt d)`` and its typicality, the
percentile of ``log p_sigma(x)`` under the noisy training data among real noisy training samples
(:func:`compare.trajectories.trajectory_distances`; real noisy training samples give the reference band).
The network's samples (the trajectories' end points) are also scored as replicates (``d1 / d2 < 1/3``).

Run: ``python -m figures.training_gap --out DIR [--scale cpu|paper]`` (writes ``training_gap.png``,
``gap.csv``, ``trajectories.csv``, ``summary.json``, ``record.json`` and the run folder ``run``; an
existing run folder is resumed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.records import Records, summarize
from compare.replicates import replicates
from figures.cli import figure_parser
from figures.settings import scale_settings
from figures.errorprone_toy import plot_gap
from figures.trajectories import distance_records, final_summary, plot_distances
from memgen import edm_sigmas, sample
from memgen.data import mondrian
from memgen.runs import atomic_save_figure, atomic_write_json, write_record
from memgen.threads import cpu_threads
from figures.run_metrics import METRICS
from neural import Config, apply_overrides, load_denoiser, read_metrics, train
from toymodels import EmpiricalDenoiser

SCALES = {
    "cpu": dict(size=8, n_train=64, n_val=64, preset="unet-tiny", steps=6000, batch_size=64, lr=1e-3,
                ema_decay=0.999, threads=1, checkpoints_per_decade=4, first_checkpoint=100, probes=64, sigmas=64,
                n_samples=128, sample_steps=18, n_reference=1000),
    "paper": dict(size=32, n_train=2000, n_val=2000, preset="yoon-unet-128", steps=200000, batch_size=128, lr=2e-4,
                  ema_decay=0.9999, threads=0, checkpoints_per_decade=4, first_checkpoint=1000, probes=1000,
                  sigmas=64, n_samples=256, sample_steps=18, n_reference=1000),
}
"""``cpu``: 8x8 Mondrian images, 64 training and 64 validation images, the tiny U-Net (0.19M parameters),
6000 steps of 64 on one thread. ``paper``: 32x32 Mondrian images (2k train, 2k validation) and a UNet-128
(Yoon et al.'s width) for 200k steps on a GPU; Kaiser & Kollmann's CIFAR-10 / ImageNet-64 networks are
beyond it. Both measure 64 log-spaced sigmas in [0.002, 80] with fixed probes and noise."""

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
EMPIRICAL = "empirical (optimal) denoiser"


def settings(scale: str = "cpu", **changes) -> dict:
    """The settings of ``scale`` (:data:`SCALES`) with ``changes`` applied."""
    return scale_settings(SCALES, scale, changes)


def run_config(s: dict, *, seed: int = 0, overrides=(), progress: bool = True) -> Config:
    """The training config: Mondrian images split seeded into ``n_train`` and ``n_val``; measured gap only."""
    d = {"data": {"name": "mondrian", "params": {"n": s["n_train"] + s["n_val"], "size": s["size"], "seed": seed,
                                                 "n_train": s["n_train"]}},
         "model": {"preset": s["preset"], "precond": "edm"},
         "train": {"steps": s["steps"], "batch_size": s["batch_size"], "lr": s["lr"], "ema_decay": s["ema_decay"],
                   "seed": seed, "threads": s["threads"], "checkpoints_per_decade": s["checkpoints_per_decade"],
                   "first_checkpoint": s["first_checkpoint"], "save_every": max(s["steps"] // 10, 1),
                   "progress": progress},
         "measure": {"probes": s["probes"], "sigmas": s["sigmas"], "sigma_min": SIGMA_MIN, "sigma_max": SIGMA_MAX,
                     "samples": 0, "seed": seed}}
    return apply_overrides(Config.from_dict(d), list(overrides))


def gap_records(run_dir) -> Records:
    """One row per (checkpoint, sigma) from a run's ``metrics.jsonl``: ``step, sigma, e_train, e_val, gap,
    abs_gap`` with their ``_lo``/``_hi`` bounds."""
    rows = Records()
    cols = [c + sfx for c in ("e_train", "e_val", "gap", "abs_gap") for sfx in ("", "_lo", "_hi")]
    for r in read_metrics(run_dir):
        for j, sigma in enumerate(r["sigma"]):
            rows.append({"step": r["step"], "train_loss": r["train_loss"], "sigma": sigma,
                         **{c: r[c][j] for c in cols}})
    return rows


def peak_gaps(rows: Records) -> dict:
    """Per checkpoint: the largest relative gap over sigma, its sigma and interval, and the gap's value at
    the largest and smallest sigma (where it should be small)."""
    out = {}
    for step in dict.fromkeys(rows.column("step").tolist()):
        sub = rows.where(step=step)
        g = sub.column("gap").astype(float)
        k = int(np.nanargmax(g))
        out[str(step)] = {"peak_gap": float(g[k]), "peak_gap_lo": sub[k]["gap_lo"], "peak_gap_hi": sub[k]["gap_hi"],
                          "peak_sigma": sub[k]["sigma"], "gap_at_sigma_min": float(g[0]),
                          "gap_at_sigma_max": float(g[-1]), "train_loss": sub[0]["train_loss"]}
    return out


def typicality_by_sigma(traj: Records) -> dict:
    """Per trajectory source: ``{sigma: median typicality (%)}`` along the sampling grid."""
    return {name: {f"{r['sigma']:.4g}": r["typicality_q50"] for r in summarize(traj.where(model=name), "sigma",
                                                                               ["typicality"])}
            for name in dict.fromkeys(traj.column("model").tolist())}


def sample_replicates(model, train: torch.Tensor, s: dict, *, seed: int = 0) -> dict:
    """Replicate fraction (``d1 / d2 < 1/3``, 95% bootstrap interval) of the network's samples from the
    trajectories' noise (:func:`figures.trajectories.distance_records` draws it from ``seed``), and their
    median nearest-training-image distance (L2, [-1, 1] pixel units)."""
    noise = torch.randn(s["n_samples"], *train.shape[1:], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x = sample(model, noise, edm_sigmas(s["sample_steps"], SIGMA_MIN, SIGMA_MAX), method="heun")
    res = replicates(x, train, seed=seed, progress=False)
    row = res.summary[0]
    return {**{k: row[k] for k in ("n_samples", "replicate_fraction", "replicate_fraction_lo",
                                   "replicate_fraction_hi", "train_replicated_fraction")},
            "nearest_distance_median": float(np.median(np.asarray(res.neighbours.distances)[:, 0]))}


def plot_errors(ax, rows: Records):
    """Training (solid) and validation (dashed) error vs sigma at the first and last checkpoints."""
    steps = sorted(dict.fromkeys(rows.column("step").tolist()))
    for step, c in ((steps[0], "tab:orange"), (steps[-1], "tab:purple")):
        sub = rows.where(step=step)
        s = sub.column("sigma").astype(float)
        ax.plot(s, sub.column("e_train").astype(float), color=c, label=f"train, step {step}")
        ax.plot(s, sub.column("e_val").astype(float), color=c, ls="--", label=f"validation, step {step}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("denoising error ||D - y||^2 / d")
    ax.legend(fontsize=7)


def training_gap(out_dir, *, scale: str = "cpu", seed: int = 0, overrides=(), progress: bool = True, **changes):
    """Train (or resume) the run, read its per-sigma gaps, sample the final network and the empirical
    denoiser, plot; returns ``(paths, summary)``. ``changes`` override the settings of ``scale``;
    ``overrides`` are config overrides (``section.key=value``)."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    s = settings(scale, **changes)
    cfg = run_config(s, seed=seed, overrides=overrides, progress=progress)
    run_dir = train(cfg, out / "run", metrics=METRICS)
    with cpu_threads(cfg.train.threads):
        return _measure_and_plot(out, run_dir, cfg, s, scale=scale, seed=seed, overrides=overrides,
                                 progress=progress)


def _measure_and_plot(out: Path, run_dir: Path, cfg: Config, s: dict, *, scale: str, seed: int, overrides,
                      progress: bool):
    """The part of :func:`training_gap` after training: gaps, trajectories, figure and summary."""
    import matplotlib.pyplot as plt

    rows = gap_records(run_dir)
    data = mondrian(**cfg.data.params)
    train_set = data.x[torch.as_tensor(data.split.train)]
    final = max(rows.column("step").tolist())
    trained = f"trained network (step {final})"
    model = load_denoiser(run_dir, final)
    traj = distance_records({trained: model, EMPIRICAL: EmpiricalDenoiser(train_set)},
                            train_set, n_samples=s["n_samples"], steps=s["sample_steps"], sigma_min=SIGMA_MIN,
                            sigma_max=SIGMA_MAX, n_reference=s["n_reference"], seed=seed, data="mondrian",
                            progress=progress)
    paths = [rows.to_csv(out / "gap.csv"), traj.to_csv(out / "trajectories.csv")]

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5), constrained_layout=True)
    plot_gap(axes[0, 0], rows, "step", "step")
    axes[0, 0].set_yscale("symlog", linthresh=0.1)
    axes[0, 0].set_title(f"relative gap on {min(s['probes'], s['n_train'])} fixed probes, fixed noise",
                         fontsize=10)
    plot_errors(axes[0, 1], rows)
    axes[0, 1].set_title("per-sigma denoising error", fontsize=10)
    plot_distances(axes[1, 0], axes[1, 1], traj, f"{s['n_samples']} trajectories")
    fig.suptitle(f"{s['preset']} (EDM) trained on {s['n_train']} Mondrian {s['size']}x{s['size']} images"
                 f" (batch {s['batch_size']}, lr {s['lr']:g}); {s['sigmas']} sigmas in [{SIGMA_MIN}, {SIGMA_MAX:g}];"
                 f" Heun, {s['sample_steps']} EDM steps")
    paths.append(atomic_save_figure(fig, out / "training_gap.png", dpi=110))
    plt.close(fig)
    summary = {"gap_by_step": peak_gaps(rows), "trajectories_at_smallest_sigma": final_summary(traj),
               "typicality_median_by_sigma": typicality_by_sigma(traj),
               "final_samples": sample_replicates(model, train_set, s, seed=seed)}
    paths.append(atomic_write_json(out / "summary.json", summary))
    paths.append(write_record(out, figure="training_gap", scale=scale, settings=s, seed=seed,
                              overrides=list(overrides)))
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("training_gap", __doc__, SCALES)
    p.add_argument("overrides", nargs="*", help="config overrides section.key=value")
    args = p.parse_args(argv)
    _, summary = training_gap(args.out, scale=args.scale, seed=args.seed, overrides=args.overrides)
    for step, v in summary["gap_by_step"].items():
        print(f"step {step:>7}: peak gap {v['peak_gap']:.3g} [{v['peak_gap_lo']:.3g}, {v['peak_gap_hi']:.3g}]"
              f" at sigma {v['peak_sigma']:.3g}; gap at sigma_min {v['gap_at_sigma_min']:.3g},"
              f" at sigma_max {v['gap_at_sigma_max']:.3g}")
    f = summary["final_samples"]
    print(f"trained network's samples: replicate fraction {f['replicate_fraction']:.3f}"
          f" [{f['replicate_fraction_lo']:.3f}, {f['replicate_fraction_hi']:.3f}],"
          f" median nearest distance {f['nearest_distance_median']:.3g}")
    for key, v in summary["trajectories_at_smallest_sigma"].items():
        print(f"{key:50s} sigma = {v['sigma']:.3g}: distance/(sigma sqrt d) = {v['normalized_distance_median']:.3g},"
              f" typicality = {v['typicality_median']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
