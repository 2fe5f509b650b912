"""Samples beside their nearest and second-nearest training images, with the ratio d1/d2 of the criterion.

Rows are samples picked at evenly spaced ranks of ``d1 / d2`` (from the clearest copy to the most
novel sample), so one picture shows what the replicate criterion accepts and what it rejects. Images
are ``[C, H, W]`` in [-1, 1] (C = 1 or 3).

Run: ``python -m figures.replicate_gallery --out DIR`` (the smoothed denoiser on 300 Mondrian images,
delta = 0.18; writes ``replicate_gallery.png``, ``replicates_per_sample.csv``, ``record.json``). Its samples
(:func:`smoothed_samples`) are also those of :mod:`figures.memorization_capacity`, which draws its gallery here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.replicates import replicates
from figures.script_args import figure_parser
from memgen import edm_sigmas, sample
from memgen.data import mondrian
from memgen.run_files import atomic_save_figure, write_record
from toymodels import SmoothedDenoiser


def _image(x: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``[H, W, C]`` (or ``[H, W]``) in [0, 1] for imshow."""
    a = ((np.asarray(x, dtype=np.float64) + 1) / 2).clip(0, 1)
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"samples: the gallery shows images [C, H, W] with C in (1, 3), got one of shape {a.shape}")
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def replicate_gallery(path, samples, train, result, *, n_show: int = 8, title: str = "") -> Path:
    """Write a gallery (PNG) of ``n_show`` samples (rows) with their two nearest training images.

    ``result`` is the :class:`compare.replicates.ReplicateResult` of ``replicates(samples, train)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.per_sample
    if len(rows) != len(samples):
        raise ValueError(f"result: holds {len(rows)} samples, samples has {len(samples)}")
    order = np.argsort(rows.column("ratio").astype(float), kind="stable")
    pick = order[np.unique(np.linspace(0, len(order) - 1, min(n_show, len(order))).round().astype(int))]
    fig, axes = plt.subplots(len(pick), 3, figsize=(6.6, 2.2 * len(pick)), squeeze=False, constrained_layout=True)
    for r, i in enumerate(pick):
        row = rows[int(i)]
        panels = [(samples[int(i)], f"sample {row['sample']}: d1/d2 = {row['ratio']:.2f}"
                                    f"{' (replicate)' if row['replicate'] else ''}"),
                  (train[row["nearest"]], f"nearest #{row['nearest']}, d1 = {row['d1']:.1f}"),
                  (train[row["second"]], f"2nd nearest #{row['second']}, d2 = {row['d2']:.1f}")]
        for c, (img, label) in enumerate(panels):
            axes[r, c].imshow(_image(img), interpolation="nearest")
            axes[r, c].set_title(label, fontsize=7)
            axes[r, c].axis("off")
    fig.suptitle(f"Samples beside their nearest training images (L2, pixel space)\n{title}", fontsize=8)
    out = atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return out


def smoothed_samples(train: torch.Tensor, delta: float, *, n_samples: int = 200, steps: int = 18,
                     seed: int = 0) -> torch.Tensor:
    """Samples of the smoothed denoiser of ``train`` (Heun, EDM grid with ``steps`` levels, seeded noise)."""
    noise = torch.randn(n_samples, *train.shape[1:], generator=torch.Generator().manual_seed(seed))
    return sample(SmoothedDenoiser(train, delta), noise, edm_sigmas(steps), method="heun")


def main(argv=None) -> int:
    p = figure_parser("replicate_gallery", __doc__)
    p.add_argument("--n-train", type=int, default=300, help="Mondrian training images")
    p.add_argument("--delta", type=float, default=0.18, help="delta of the smoothed denoiser")
    p.add_argument("--n-samples", type=int, default=64)
    args = p.parse_args(argv)
    out = Path(args.out)
    train = mondrian(args.n_train, seed=args.seed).train
    samples = smoothed_samples(train, args.delta, n_samples=args.n_samples, seed=args.seed + 1)
    res = replicates(samples, train, seed=args.seed)
    replicate_gallery(out / "replicate_gallery.png", samples, train, res,
                      title=f"smoothed denoiser, delta = {args.delta:g}, n = {args.n_train} Mondrian images")
    res.per_sample.to_csv(out / "replicates_per_sample.csv")
    write_record(out, figure="replicate_gallery", **vars(args))
    print(f"replicate fraction {res.summary[0]['replicate_fraction']:.3f} "
          f"[{res.summary[0]['replicate_fraction_lo']:.3f}, {res.summary[0]['replicate_fraction_hi']:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
