"""The circle panels of ``memgen demo``: the generalization gap and where sampling trajectories go.

On Kaiser & Kollmann's toy (20 points on a circle of radius 10, alternately train and validation):

* gap: ``G = (E_val - E_train) / E_train`` vs sigma of the smoothed denoiser for a few delta
  (unsquared L2, common noise draws), with its peak fitted in log sigma and a bootstrap interval over
  the points (:func:`toy_gap`; claim 2 of ``memgen report`` draws its curves with :func:`plot_toy_gaps`);
* trajectories: nearest-training-point distance in units of ``sigma sqrt(d)`` and typicality under the
  noisy training data vs sigma, for the optimal and the smoothed denoiser and for real noisy training
  samples (:func:`figures.trajectories.distance_records`).

``gap_and_trajectory_panels(out_dir)`` writes ``circle_panels.png``, ``circle_gap.csv`` and
``circle_trajectories.csv`` and returns ``(paths, summary)``.
Run: ``python -m figures.circle_panels --out DIR``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.gap import point_errors
from compare.peaks import gap_peak
from compare.records import Records
from figures.trajectories import distance_records, final_summary, plot_distances
from figures.script_args import figure_parser
from memgen.data import circle
from memgen.noise import log_sigmas
from memgen.run_files import atomic_save_figure
from toymodels import EmpiricalDenoiser, SmoothedDenoiser


def toy_gap(n_points: int, delta: float, sigmas, *, n_draws: int, seed: int = 0, n_boot: int = 300) -> dict:
    """Kaiser & Kollmann's toy: the generalization gap of the smoothed denoiser of the ``n_points`` circle
    (radius 10, alternately train and validation, :func:`memgen.data.circle`) with smoothing ``delta``.

    ``G(sigma) = (E_val - E_train) / E_train`` with the unsquared error ``E = mean_i ||D(y_i + sigma n_i) - y_i||``
    over the points and ``n_draws`` draws per point, the same draws at every sigma (training draws from
    ``seed``, validation draws from ``seed + 1``). Returns :func:`compare.peaks.gap_peak` (the peak fitted in
    log sigma, with bootstrap intervals over the points) and ``curve``, ``G`` on the grid ``sigmas``.
    """
    ds = circle(n_points)
    model = SmoothedDenoiser(ds.train, delta, dtype=torch.float64)
    kw = dict(n_draws=n_draws, squared=False, dtype=torch.float64, progress=False)
    et = point_errors(model, ds.train, sigmas, seed=seed, **kw)
    ev = point_errors(model, ds.val, sigmas, seed=seed + 1, **kw)
    out = gap_peak(et, ev, sigmas, n_boot=n_boot, seed=seed)
    out["curve"] = ((ev.mean(0) - et.mean(0)) / et.mean(0)).tolist()
    return out


def plot_toy_gaps(ax, sigmas, gaps: dict):
    """``gaps``: ``{label: {'curve', 'sigma_peak', 'sigma_peak_lo', 'sigma_peak_hi', 'gap_peak'}}`` (as
    :func:`toy_gap` gives); one gap curve per label, its fitted peak marked with the peak's interval."""
    s = np.asarray(sigmas, dtype=np.float64)
    for label, p in gaps.items():
        line, = ax.plot(s, p["curve"], label=f"{label}; peak at {p['sigma_peak']:.3g}")
        ax.errorbar([p["sigma_peak"]], [p["gap_peak"]], xerr=[[p["sigma_peak"] - p["sigma_peak_lo"]],
                    [p["sigma_peak_hi"] - p["sigma_peak"]]], color=line.get_color(), marker="o", ms=3, capsize=2)
    ax.axhline(0, color="0.5", lw=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("sigma")
    ax.set_ylabel("gap (E_val - E_train) / E_train")
    ax.legend(fontsize=7)


def gap_and_trajectory_panels(out_dir, *, deltas=(2.2, 1.6, 1.2), delta: float = 1.6, n_points: int = 20,
                              n_draws: int = 200, n_samples: int = 200, steps: int = 18, seed: int = 0,
                              progress: bool = False):
    """Write the gap panel and the two trajectory panels for the circle; returns ``(paths, summary)``.

    summary: ``gap_peaks`` (per delta: the fitted peak's sigma and gap with their intervals) and
    ``trajectories`` (per model: median normalized distance and typicality at the smallest sigma).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    sigmas = log_sigmas(33, 0.01, 100.0)
    gaps = {d: toy_gap(n_points, d, sigmas, n_draws=n_draws, seed=seed) for d in deltas}
    ring = circle(n_points).train.double()
    traj = distance_records({"optimal": EmpiricalDenoiser(ring, dtype=torch.float64),
                             f"smoothed (delta={delta:g})": SmoothedDenoiser(ring, delta, dtype=torch.float64)},
                            ring, n_samples=n_samples, steps=steps, sigma_min=0.01, seed=seed, data="circle",
                            progress=progress)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
    plot_toy_gaps(axes[0], sigmas, {f"delta = {d:g}": g for d, g in gaps.items()})
    axes[0].set_title(f"generalization gap of the smoothed denoiser ({n_points} points, unsquared L2)", fontsize=10)
    plot_distances(axes[1], axes[2], traj, "sampling trajectories")
    fig.suptitle(f"Circle toy: the gap peaks at intermediate sigma; smoothed trajectories (delta = {delta:g}) "
                 f"leave the noisy training data, optimal ones do not")
    paths = [atomic_save_figure(fig, out / "circle_panels.png", dpi=110)]
    plt.close(fig)
    paths.append(Records({"delta": d, "sigma": s, "gap": v} for d, g in gaps.items()
                         for s, v in zip(sigmas.tolist(), g["curve"])).to_csv(out / "circle_gap.csv"))
    paths.append(traj.to_csv(out / "circle_trajectories.csv"))
    summary = {"gap_peaks": {str(d): {k: v for k, v in g.items() if k != "curve"} for d, g in gaps.items()},
               "trajectories": final_summary(traj)}
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("circle_panels", __doc__)
    args = p.parse_args(argv)
    paths, summary = gap_and_trajectory_panels(args.out, seed=args.seed, progress=True)
    print("\n".join(map(str, paths)))
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
