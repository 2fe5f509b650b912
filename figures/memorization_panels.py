"""The four memorization panels of one model, the summary figure of ``memgen audit`` (``audit.png``): over
sigma, its errors and gap, its distance to the optimal denoiser, its trajectories, and the per-sample criteria
of replication."""
from __future__ import annotations

import numpy as np


def _curve(ax, rows, x, y, label, **kw):
    rows = sorted(rows, key=lambda r: r[x])
    xs = np.asarray([r[x] for r in rows], dtype=float)
    ys = np.asarray([np.nan if r[y] is None else r[y] for r in rows], dtype=float)
    ax.plot(xs, ys, marker="o", ms=3, label=label, **kw)


def audit_figure(path, gap, dist, tsum, per_sample, model_name: str, settings):
    """Write ``path``: (a) training and validation error of the model and of the optimal denoiser, (b) RMS distance to the optimal
    denoiser on training and validation probes, (c) median trajectory distance to the nearest training and
    validation point and median typicality, (d) the per-sample ratio d1/d2 against the best cosine similarity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memgen.run_files import atomic_save_figure

    fig, ax = plt.subplots(2, 2, figsize=(10, 7.5), constrained_layout=True)
    for name, color in ((model_name, "C0"), ("optimal", "C3")):
        rows = [r for r in gap if r["model"] == name]
        _curve(ax[0, 0], rows, "sigma", "e_train", f"{name}: train", color=color)
        _curve(ax[0, 0], rows, "sigma", "e_val", f"{name}: validation", color=color, ls="--")
    ax[0, 0].set(xscale="log", yscale="log", xlabel="sigma", ylabel="denoising error per dimension",
                 title="(a) train and validation error (gap: gap.csv)")
    for split in ("train", "val"):
        _curve(ax[0, 1], [r for r in dist if r["split"] == split], "sigma", "rms_distance_mean", f"{split} probes")
    ax[0, 1].set(xscale="log", yscale="log", xlabel="sigma", ylabel="||D - D*|| / sqrt(d)",
                 title="(b) distance to the optimal denoiser")
    twin = ax[1, 0].twinx()
    for ref in ("train", "val"):
        sel = [r for r in tsum if r["reference"] == ref and r.get("source", "trajectory") == "trajectory"]
        _curve(ax[1, 0], sel, "sigma", "normalized_distance_q50", f"to nearest {ref} point")
        if ref == "train":
            _curve(twin, sel, "sigma", "typicality_q50", "typicality (right axis)", color="0.5", ls="--")
    control = [r for r in tsum if r["reference"] == "train" and r.get("source") == "validation"]
    if control:
        _curve(twin, control, "sigma", "typicality_q50", "typicality of noisy validation (control)", color="0.7", ls=":")
    ax[1, 0].set(xscale="log", yscale="log", xlabel="sigma", ylabel="median distance / (sigma sqrt(d))",
                 title="(c) sampling trajectories")
    twin.set(ylabel="median typicality (percentile)", ylim=(0, 100))
    twin.legend(loc="lower right", fontsize=7)
    ratio, best = per_sample.column("ratio").astype(float), per_sample.column("best_cosine").astype(float)
    ax[1, 1].scatter(ratio, best, s=8)
    ax[1, 1].axvline(settings.threshold, color="r", lw=0.8)
    ax[1, 1].axhline(settings.cosine_threshold, color="r", lw=0.8)
    ax[1, 1].set(xlabel="d1 / d2 (replicate left of the red line)", ylabel="best cosine (replicate above)",
                 title=f"(d) samples: ratio and cosine criteria ({settings.features})")
    for a in (ax[0, 0], ax[0, 1], ax[1, 0]):
        a.legend(fontsize=7)
    fig.suptitle(f"memgen audit: {model_name}")
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
