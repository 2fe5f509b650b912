"""Where sampling trajectories go: the optimal vs the smoothed denoiser, on the circle and on Mondrian images.

For every state of a deterministic (Heun, EDM grid) sampling trajectory at noise sigma, we plot the
distance to the nearest training point in units of ``sigma sqrt(d)`` and its typicality: the percentile
of ``log (1/n) sum_i N(x; y_i, sigma^2 I)`` among real noisy training samples at that sigma
(:func:`compare.trajectories.trajectory_distances`). Real noisy training samples ``y_J + sigma eps``,
run through the same measure, give the reference band (typicality uniform: median 50, quartiles 25/75);
noisy *validation* points ``v_K + sigma eps`` give the control band: at small sigma they are atypical
of the noisy training data too, so a model's states are judged against both. The summary gives, per
model, the largest sigma at which its states part from the noisy training data
(:func:`compare.trajectories.parting_sigma`), next to the control's.

Expected (Kaiser & Kollmann's third claim, measured directly): the optimal denoiser's trajectories stay
typical of the noisy training data all the way down (they end on training points); the smoothed
denoiser's trajectories leave it at sigma below about delta (they stop near the data, at a distance of
order ``delta sqrt(d)``, which is many ``sigma sqrt(d)`` away; typicality falls to 0).

Run: ``python -m figures.trajectories --out DIR`` (writes ``trajectories.png``, ``trajectories.csv``,
``summary.json``, ``record.json``).
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from compare.records import Records, summarize
from compare.trajectories import parting_sigma, trajectory_distances, typicality_control
from figures.script_args import figure_parser
from memgen import Trajectory, edm_sigmas, sample
from memgen.data import circle, mondrian
from memgen.progress import progress_bar
from memgen.run_files import atomic_save_figure, atomic_write_json, write_record
from toymodels import EmpiricalDenoiser, SmoothedDenoiser

REFERENCE = "noisy training data"
CONTROL = "noisy validation data"


def noisy_training_states(train: torch.Tensor, sigmas: torch.Tensor, n: int, *, seed: int = 0) -> Trajectory:
    """A pseudo-trajectory of real noisy training samples ``y_J + sigma_t eps`` at every level of ``sigmas``.

    ``J`` and ``eps`` are drawn once (seeded) and reused at every sigma; it has no model outputs.
    """
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(0, train.shape[0], (int(n),), generator=g)
    eps = torch.randn(int(n), *train.shape[1:], generator=g, dtype=train.dtype)
    s = sigmas.to(train.dtype).reshape(-1, *([1] * train.dim()))
    return Trajectory(train[idx][None] + s * eps[None], sigmas, torch.empty(0))


def distance_records(models: dict, train: torch.Tensor, *, val: torch.Tensor | None = None, n_samples: int = 64,
                     steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, n_reference: int = 1000,
                     seed: int = 0, data: str = "", progress: bool = False) -> Records:
    """Trajectory-distance records of each model (Heun sampling from seeded noise), of real noisy
    training samples at the same noise levels (``model = 'noisy training data'``) and, with ``val``, of
    noisy validation points (``model = 'noisy validation data'``, the control)."""
    sigmas = edm_sigmas(steps, sigma_min, sigma_max)
    noise = torch.randn(n_samples, *train.shape[1:], generator=torch.Generator().manual_seed(seed))
    rows = Records()
    for name, model in progress_bar(list(models.items()), enabled=progress, desc=f"trajectories {data}", leave=False):
        _, traj = sample(model, noise.to(train.dtype), sigmas, method="heun", return_trajectory=True)
        rows += trajectory_distances(traj, train, n_reference=n_reference, seed=seed + 1, progress=False,
                                     tags={"data": data, "model": name})
    ref = noisy_training_states(train, sigmas, n_samples, seed=seed + 2)
    rows += trajectory_distances(ref, train, n_reference=n_reference, seed=seed + 1, progress=False,
                                 tags={"data": data, "model": REFERENCE})
    if val is not None:
        ctrl = noisy_training_states(val.to(train.dtype), sigmas, n_samples, seed=seed + 3)
        rows += trajectory_distances(ctrl, train, n_reference=n_reference, seed=seed + 1, progress=False,
                                     tags={"data": data, "model": CONTROL})
    return rows


def plot_distances(ax_dist, ax_typ, rows: Records, title: str):
    """Median and quartiles per sigma of the normalized distance (left) and typicality (right), per model."""
    colours = {REFERENCE: "0.45", CONTROL: "k"}
    palette = itertools.cycle(["crimson", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown",
                               "tab:pink", "tab:olive", "tab:cyan"])
    for name in dict.fromkeys(rows.column("model").tolist()):
        summ = summarize(rows.where(model=name), "sigma", ["normalized_distance", "typicality"])
        s = np.asarray([r["sigma"] for r in summ])
        c = colours.get(name) or next(palette)
        ls = {REFERENCE: "--", CONTROL: ":"}.get(name, "-")
        for ax, col in ((ax_dist, "normalized_distance"), (ax_typ, "typicality")):
            ax.plot(s, [r[f"{col}_q50"] for r in summ], color=c, ls=ls, label=name)
            ax.fill_between(s, [r[f"{col}_q25"] for r in summ], [r[f"{col}_q75"] for r in summ], color=c, alpha=0.18)
    for ax in (ax_dist, ax_typ):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("noise level sigma (sampling runs left to right)")
        ax.legend(fontsize=7)
    ax_dist.set_yscale("log")
    ax_dist.set_ylabel("nearest training point distance / (sigma sqrt(d))")
    ax_dist.set_title(f"{title}: distance to training set", fontsize=10)
    ax_typ.set_ylim(-2, 102)
    ax_typ.set_ylabel("typicality: percentile of log p_sigma(x) (%)")
    ax_typ.set_title(f"{title}: typicality", fontsize=10)


def final_summary(rows: Records) -> dict:
    """Per (data, model): median normalized distance and typicality at the smallest sigma > 0, and the
    largest sigma at which its states part from the noisy training data (KS p < 0.01; None: never)."""
    out = {}
    for data in dict.fromkeys(rows.column("data").tolist()):
        sub = rows.where(data=data)
        s_min = float(min(sub.column("sigma").astype(float)))
        for row in summarize(sub.where(sigma=s_min), "model", ["normalized_distance", "typicality"]):
            out[f"{data} / {row['model']}"] = {"sigma": s_min,
                                              "normalized_distance_median": row["normalized_distance_q50"],
                                              "typicality_median": row["typicality_q50"],
                                              "parting_sigma": parting_sigma(typicality_control(
                                                  sub.where(model=row["model"])))}
    return out


def trajectories(out_dir, *, circle_delta: float = 1.6, mondrian_n: int = 500, mondrian_delta: float = 0.2,
                 n_samples: int = 64, steps: int = 18, seed: int = 0, progress: bool = True):
    """Both data sets, optimal vs smoothed; returns ``(paths, summary)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    ring, ring_val = circle(20).train.double(), circle(20).val.double()
    mond = mondrian(mondrian_n, seed=seed).train
    mond_val = mondrian(mondrian_n, seed=seed + 1).train                  # fresh images of the same law
    rows = distance_records({"optimal": EmpiricalDenoiser(ring, dtype=torch.float64),
                             f"smoothed (delta={circle_delta:g})": SmoothedDenoiser(ring, circle_delta,
                                                                                    dtype=torch.float64)},
                            ring, val=ring_val, n_samples=max(n_samples, 200), steps=steps, sigma_min=0.01, seed=seed,
                            data="circle", progress=progress)
    rows += distance_records({"optimal": EmpiricalDenoiser(mond),
                              f"smoothed (delta={mondrian_delta:g})": SmoothedDenoiser(mond, mondrian_delta)},
                             mond, val=mond_val, n_samples=n_samples, steps=steps, n_reference=500, seed=seed, data="mondrian",
                             progress=progress)
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    plot_distances(axes[0, 0], axes[0, 1], rows.where(data="circle"), "circle (d = 2, 10 training points)")
    plot_distances(axes[1, 0], axes[1, 1], rows.where(data="mondrian"),
                   f"Mondrian 32x32 (d = 3072, {mondrian_n} training images)")
    fig.suptitle(f"Sampling trajectories (Heun, {steps} EDM steps) vs noisy training data; median and quartiles")
    paths = [atomic_save_figure(fig, out / "trajectories.png", dpi=110)]
    plt.close(fig)
    paths.append(rows.to_csv(out / "trajectories.csv"))
    summary = final_summary(rows)
    paths.append(atomic_write_json(out / "summary.json", summary))
    paths.append(write_record(out, figure="trajectories", circle_delta=circle_delta, mondrian_n=mondrian_n,
                              mondrian_delta=mondrian_delta, n_samples=n_samples, steps=steps, seed=seed))
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("trajectories", __doc__)
    p.add_argument("--mondrian-n", type=int, default=500, help="Mondrian training images")
    p.add_argument("--mondrian-delta", type=float, default=0.2, help="delta of the smoothed model on Mondrian")
    args = p.parse_args(argv)
    _, summary = trajectories(args.out, mondrian_n=args.mondrian_n, mondrian_delta=args.mondrian_delta, seed=args.seed)
    for key, v in summary.items():
        print(f"{key:45s} sigma = {v['sigma']:.3g}: distance/(sigma sqrt d) = {v['normalized_distance_median']:.3g},"
              f" typicality = {v['typicality_median']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
