"""Memorization capacity of the analytic models: replicate fraction vs training-set size on Mondrian images.

The shape of Yoon et al.'s Figure 1 with the smoothing ``delta`` of the error-prone (smoothed) denoiser
in the role of model size: for each training-set size n (Mondrian 32x32, all images train) and each
delta, draw samples with the deterministic Heun sampler on the EDM grid and count replicates by the
ratio criterion ``d1 / d2 < 1/3`` of the two nearest training images in pixel space
(:func:`compare.replicates.replicates`, 95% bootstrap intervals). ``delta = 0`` is the optimal
denoiser, which reproduces training images at every n.

Reading it: a smoothed model samples (exactly, for an exact ODE solve) the training images broadened by
``N(0, delta^2 I)``, so ``d1 ~ delta sqrt(d)`` while ``d2`` is about the distance between neighbouring
training images, which shrinks as n grows. Replication is complete while ``d2 > 3 d1`` and fades as the
data get denser: the capacity grows as delta falls, like a larger network's.

An analytic illustration, not evidence for Yoon et al.'s Hypothesis 1 (capacity grows with network
width): that claim is tested on trained networks of three widths by claim 8 of ``memgen report``
(:mod:`lab.claims.yoon`).

Run: ``python -m figures.memorization_capacity --out DIR`` (writes ``memorization_capacity.png``,
``replicate_gallery.png``, ``replicates.csv``, ``summary.json``, ``record.json``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.records import Records
from compare.replicates import replicates
from figures.replicate_gallery import replicate_gallery, smoothed_samples
from figures.script_args import figure_parser
from memgen.data import mondrian
from memgen.progress import progress_bar
from memgen.run_files import atomic_save_figure, atomic_write_json, write_record

DELTAS = (0.0, 0.14, 0.16, 0.18, 0.2)
SIZES = (100, 300, 1000, 3000)


def capacity_records(*, deltas=DELTAS, sizes=SIZES, n_samples: int = 200, steps: int = 18, seed: int = 0,
                     n_boot: int = 1000, progress: bool = True):
    """Replicate summaries (group 'all') per (n, delta), and ``{(n, delta): (samples, train, result)}``."""
    rows = Records()
    kept = {}
    bar = progress_bar(total=len(sizes) * len(deltas), enabled=progress, desc="memorization capacity")
    for n in sizes:
        train = mondrian(n, seed=seed).train
        for delta in deltas:
            samples = smoothed_samples(train, delta, n_samples=n_samples, steps=steps, seed=seed + 1)
            res = replicates(samples, train, n_boot=n_boot, seed=seed, progress=False,
                             tags={"delta": delta})          # the summary's n_train is n
            rows += res.summary.where(group="all")
            kept[(n, delta)] = (samples, train, res)
            bar.update()
    bar.close()
    return rows, kept


def plot_capacity(ax, rows: Records):
    """Replicate fraction (with its interval) vs n, one curve per delta."""
    deltas = list(dict.fromkeys(rows.column("delta").tolist()))
    colours = __import__("matplotlib").colormaps["viridis"](np.linspace(0, 0.9, len(deltas)))
    for delta, c in zip(deltas, colours):
        sub = rows.where(delta=delta)
        n = sub.column("n_train").astype(float)
        f = sub.column("replicate_fraction").astype(float)
        err = [f - sub.column("replicate_fraction_lo").astype(float),
               sub.column("replicate_fraction_hi").astype(float) - f]
        label = "optimal (delta = 0)" if delta == 0 else f"smoothed, delta = {delta:g}"
        ax.errorbar(n, f, yerr=err, color=c, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("training-set size n (Mondrian images)")
    ax.set_ylabel("fraction of samples that replicate (d1/d2 < 1/3)")
    ax.legend(fontsize=8)


def memorization_capacity(out_dir, *, deltas=DELTAS, sizes=SIZES, n_samples: int = 200, steps: int = 18,
                          seed: int = 0, n_boot: int = 1000, gallery: tuple | None = None, progress: bool = True):
    """Compute and plot the capacity curves; ``gallery = (n, delta)`` picks the setting whose samples are
    shown beside their nearest training images (default: the one whose replicate fraction is closest
    to 1/2). Returns ``(paths, summary)``; summary maps ``delta -> {n: replicate fraction}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    rows, kept = capacity_records(deltas=deltas, sizes=sizes, n_samples=n_samples, steps=steps, seed=seed,
                                  n_boot=n_boot, progress=progress)
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    plot_capacity(ax, rows)
    ax.set_title(f"Analytic illustration (not evidence for Yoon et al.'s H1; claim 8 tests networks):\n"
                 f"memorization capacity of the smoothed denoiser on Mondrian 32x32, delta in the role of model size\n"
                 f"{n_samples} samples per point (Heun, {steps} EDM steps), 95% bootstrap intervals", fontsize=9)
    paths = [atomic_save_figure(fig, out / "memorization_capacity.png", dpi=110)]
    plt.close(fig)
    if gallery is None:                                   # the setting closest to half replicating
        best = min(rows, key=lambda r: abs(r["replicate_fraction"] - 0.5))
        gallery = (best["n_train"], best["delta"])
    samples, train, res = kept[gallery]
    title = f"smoothed denoiser, delta = {gallery[1]:g}, n = {gallery[0]} Mondrian images"
    paths.append(replicate_gallery(out / "replicate_gallery.png", samples, train, res, title=title))
    paths.append(rows.to_csv(out / "replicates.csv"))
    summary = {str(d): {str(r["n_train"]): r["replicate_fraction"] for r in rows.where(delta=d)} for d in deltas}
    paths.append(atomic_write_json(out / "summary.json", summary))
    paths.append(write_record(out, figure="memorization_capacity", deltas=list(deltas), sizes=list(sizes),
                              n_samples=n_samples, steps=steps, seed=seed, n_boot=n_boot, gallery=list(gallery)))
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("memorization_capacity", __doc__)
    p.add_argument("--n-samples", type=int, default=200, help="samples per (n, delta)")
    args = p.parse_args(argv)
    _, summary = memorization_capacity(args.out, n_samples=args.n_samples, seed=args.seed)
    for delta, curve in summary.items():
        print(f"delta = {delta:>5s}: " + ", ".join(f"n={n}: {f:.3f}" for n, f in curve.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
