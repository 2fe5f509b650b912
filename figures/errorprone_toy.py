"""Kaiser & Kollmann's error-prone toy, reproduced: the generalization gap of the smoothed denoiser.

Data: ``n`` points equally spaced on a circle of radius 10, alternately train and validation
(:func:`memgen.data.circle`). Model: the smoothed (error-prone) denoiser of the training points,
``D_delta(x, sigma) = (delta^2 x + sigma^2 D*(x, sqrt(sigma^2 + delta^2))) / (sigma^2 + delta^2)``.
Error: unsquared ``E = mean ||D(y + sigma n) - y||`` with the same draws ``n`` for every sigma and
model (common random numbers), gap ``G = (E_val - E_train) / E_train`` with bootstrap intervals.

Panels: (a) G vs sigma on the 20-point circle for delta in {2.2, 2.0, ..., 1.2}; (b) G vs sigma as the
data get denser (16..30 points, delta = 1.6); (c) the effective number of training points ``exp(H)``
of the optimal denoiser's posterior vs sigma, at noisy training and validation points.
Expected: the gap peaks at an intermediate sigma, shrinks as delta grows, and shrinks and moves to
smaller sigma as the data get denser; ``exp(H)`` goes from 1 (small sigma) to n_train (large sigma).

Run: ``python -m figures.errorprone_toy --out DIR`` (writes ``errorprone_toy.png``, ``gap.csv``,
``effective_number.csv``, ``summary.json``, ``record.json``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.errors import common_noise, generalization_gap
from compare.localization import localization
from compare.records import Records, summarize
from figures.cli import figure_parser
from memgen.data import circle
from memgen.noise import log_sigmas
from memgen.progress import progress_bar
from memgen.runs import atomic_save_figure, atomic_write_json, write_record
from toymodels import EmpiricalDenoiser, SmoothedDenoiser

DELTAS = (2.2, 2.0, 1.8, 1.6, 1.4, 1.2)
DENSITIES = (16, 18, 20, 22, 24, 26, 28, 30)


def gap_sweep(settings, sigmas, *, n_draws: int = 500, seed: int = 0, n_boot: int = 200, radius: float = 10.0,
              progress: bool = False) -> Records:
    """Gap records of the smoothed denoiser for each ``(n_points, delta)`` in ``settings`` (unsquared L2)."""
    rows = Records()
    for n_points, delta in progress_bar(list(settings), enabled=progress, desc="gap sweep", leave=False):
        ds = circle(n_points, radius)
        model = SmoothedDenoiser(ds.train, delta, dtype=torch.float64)
        rows += generalization_gap(model, ds.train, ds.val, sigmas, n_draws=n_draws, seed=seed, squared=False,
                                   n_boot=n_boot, dtype=torch.float64, progress=False,
                                   tags={"n_points": n_points, "delta": delta})
    return rows


def peaks(rows: Records, by: str) -> dict:
    """For each value of column ``by``: the sigma where the gap is largest and the gap there."""
    out = {}
    for key in dict.fromkeys(rows.column(by).tolist()):
        sub = rows.where(**{by: key})
        j = int(np.argmax(sub.column("gap").astype(float)))
        out[key] = {"sigma_peak": sub[j]["sigma"], "gap_peak": sub[j]["gap"],
                    "gap_peak_lo": sub[j]["gap_lo"], "gap_peak_hi": sub[j]["gap_hi"]}
    return out


def effective_number(sigmas, *, n_points: int = 20, n_draws: int = 50, seed: int = 0,
                     radius: float = 10.0) -> Records:
    """``exp(H)`` of the optimal denoiser at noisy training and validation points ``y + sigma n`` (fixed draws)."""
    ds = circle(n_points, radius)
    model = EmpiricalDenoiser(ds.train, dtype=torch.float64)
    rows = Records()
    for name, pts, s in (("train", ds.train, seed), ("validation", ds.val, seed + 1)):
        z = common_noise(pts.shape[0], pts.shape[1:], n_draws=n_draws, seed=s, dtype=torch.float64)
        x = pts.double().expand(n_draws, *pts.shape).reshape(-1, *pts.shape[1:])
        rows += localization(model, x, sigmas, noise=z.reshape(x.shape), dtype=torch.float64, progress=False,
                             tags={"points": name, "n_points": n_points})
    return rows


def plot_gap(ax, rows: Records, by: str, label: str, cmap: str = "viridis"):
    """Gap vs sigma with its bootstrap band, one curve per value of ``by``."""
    keys = list(dict.fromkeys(rows.column(by).tolist()))
    colours = __import__("matplotlib").colormaps[cmap](np.linspace(0, 0.9, len(keys)))
    for key, c in zip(keys, colours):
        sub = rows.where(**{by: key})
        s = sub.column("sigma").astype(float)
        ax.plot(s, sub.column("gap").astype(float), color=c, label=f"{label} = {key:g}")
        ax.fill_between(s, sub.column("gap_lo").astype(float), sub.column("gap_hi").astype(float), color=c, alpha=0.2)
    ax.axhline(0, color="0.5", lw=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("gap (E_val - E_train) / E_train")
    ax.legend(fontsize=7)


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


def errorprone_toy(out_dir, *, deltas=DELTAS, densities=DENSITIES, density_delta: float = 1.6, n_points: int = 20,
                   sigmas=None, n_draws: int = 500, n_boot: int = 200, seed: int = 0, progress: bool = True):
    """Compute and plot panels (a)-(c); returns ``(paths, summary)`` (summary: the gap peaks per delta/density)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    sigmas = log_sigmas(41, 0.01, 100.0) if sigmas is None else sigmas
    by_delta = gap_sweep([(n_points, d) for d in deltas], sigmas, n_draws=n_draws, seed=seed, n_boot=n_boot,
                         progress=progress)
    by_density = gap_sweep([(n, density_delta) for n in densities], sigmas, n_draws=n_draws, seed=seed,
                           n_boot=n_boot, progress=progress)
    eff = effective_number(sigmas, n_points=n_points, seed=seed)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
    plot_gap(axes[0], by_delta, "delta", "delta")
    axes[0].set_title(f"(a) {n_points} points on a circle of radius 10, unsquared L2")
    plot_gap(axes[1], by_density, "n_points", "points", cmap="plasma")
    axes[1].set_title(f"(b) denser data, delta = {density_delta:g}")
    plot_effective_number(axes[2], eff, n_points // 2)
    axes[2].set_title(f"(c) optimal denoiser, {n_points // 2} training points")
    fig.suptitle(f"Error-prone toy (Kaiser & Kollmann): generalization gap of the smoothed denoiser; "
                 f"{n_draws} common noise draws per point, 95% bootstrap bands")
    paths = [atomic_save_figure(fig, out / "errorprone_toy.png", dpi=110)]
    plt.close(fig)
    paths.append((by_delta + by_density).to_csv(out / "gap.csv"))
    paths.append(eff.to_csv(out / "effective_number.csv"))
    summary = {"by_delta": {str(k): v for k, v in peaks(by_delta, "delta").items()},
               "by_density": {str(k): v for k, v in peaks(by_density, "n_points").items()}}
    paths.append(atomic_write_json(out / "summary.json", summary))
    paths.append(write_record(out, figure="errorprone_toy", deltas=list(deltas), densities=list(densities),
                              density_delta=density_delta, n_points=n_points, n_draws=n_draws, n_boot=n_boot,
                              seed=seed, sigmas=torch.as_tensor(sigmas).tolist()))
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("errorprone_toy", __doc__)
    p.add_argument("--n-draws", type=int, default=500, help="noise draws per point")
    args = p.parse_args(argv)
    _, summary = errorprone_toy(args.out, n_draws=args.n_draws, seed=args.seed)
    for panel, table in summary.items():
        for key, v in table.items():
            print(f"{panel:10s} {key:>5s}: gap peaks at sigma = {v['sigma_peak']:.3g}, G = {v['gap_peak']:.3f}"
                  f" [{v['gap_peak_lo']:.3f}, {v['gap_peak_hi']:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
