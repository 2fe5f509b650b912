"""Yoon et al.'s dummy-data experiment: a class-conditional U-Net on Mondrian images, alone or with GM dummies.

Two runs train the same class-conditional network (EDM preconditioning and loss at CPU scale) for the same
number of steps on (a) ``n`` Mondrian images alone and (b) the very same ``n`` Mondrian images plus
``k n`` Gaussian-mixture dummy images (:func:`memgen.data.gm_dummies`, 100 templates, std 0.5),
each set a :func:`memgen.data.mixture` (class 0: Mondrian, class 1: dummies; the Mondrian part of
both is drawn from the same spawned seed, so it is identical). At every checkpoint of the
log-spaced grid, ``N`` Mondrian-class samples are drawn from the same fixed noise (Heun, EDM grid, clipped
to [-1, 1] as saved images are) and scored:

* replicate fraction: a sample replicates when ``d1 / d2 < 1/3`` for its two nearest training images in
  pixel space (:func:`compare.replicates.replicates`, over the whole training set of the run);
* Mondrian validity: the fraction of samples obeying the Mondrian rule, four flat quadrants around a
  cross (:func:`compare.fidelity.mondrian_validity`), at a stated tolerance ``tol`` (max - min per
  channel within a quadrant, [-1, 1] units; default 0.2, i.e. about 25 of 255 levels: a network's
  near-copies of valid training images are not flat to one 8-bit level, and 0.2 is where the samples of
  the memorizing CPU-scale run, 98% replicates, pass); the strict default of ``compare`` (one 8-bit
  level) is recorded as well.

Both with 95% percentile-bootstrap intervals over samples. Expected (Yoon et al., Hypothesis 2: 2k
Mondrians alone give about 92% replicates, with 6k dummies 0.2%): the network replicates the
Mondrians it can store, and the dummies, which take up its capacity, stop the replication while the
Mondrian-class samples stay valid Mondrians.

At the last checkpoint, validity is also given at several tolerances, next to that of the training
Mondrians (valid at every tolerance) and of the training dummies: it shows what a tolerance accepts.

Run: ``python -m figures.yoon_replication --out DIR [--scale cpu|paper]`` (writes ``yoon_replication.png``,
``gallery_<run>.png``, ``replication.csv``, ``validity_by_tolerance.csv``, ``summary.json``,
``record.json``, and the run folders ``runs/<run>``; an existing run folder is resumed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.bootstrap import mean_interval
from compare.fidelity import mondrian_validity
from compare.records import Records
from compare.replicates import replicates
from figures.cli import figure_parser
from figures.replicate_gallery import replicate_gallery
from figures.settings import scale_settings
from memgen import edm_sigmas, sample
from memgen.data import mixture
from memgen.runs import atomic_save_figure, atomic_write_json, write_record
from memgen.threads import cpu_threads
from neural import Config, apply_overrides, list_checkpoints, load_denoiser, measure_run, read_metrics, train

MONDRIAN = 0
"""Class index of the Mondrian images in both training sets (the first part of the mixture)."""

STRICT_TOL = 2 / 255
TOLS = (STRICT_TOL, 0.05, 0.1, 0.2, 0.3, 0.5)
"""Tolerances (max - min per channel of a quadrant, [-1, 1] units) of the validity-vs-tolerance panel."""

SCALES = {
    "cpu": dict(size=8, n_mondrian=64, dummies_per_mondrian=3, preset="unet-tiny", precond="edm", steps=5000,
                batch_size=64, lr=1e-3, ema_decay=0.999, threads=1, checkpoints_per_decade=4,
                first_checkpoint=100, n_samples=256, sample_steps=18, tol=0.2, n_boot=1000),
    "paper": dict(size=32, n_mondrian=2000, dummies_per_mondrian=3, preset="yoon-unet-128", precond="vp",
                  steps=100000, batch_size=256, lr=1e-4, ema_decay=0.9999, threads=0, checkpoints_per_decade=4,
                  first_checkpoint=1000, n_samples=2000, sample_steps=18, tol=0.2, n_boot=1000),
}
"""``cpu``: 8x8 images, 64 Mondrians (+192 dummies), the tiny U-Net (0.19M parameters), 5000 steps of 64
on one thread. ``paper``: Yoon et al.'s sizes (2k Mondrians + 6k dummies, 32x32, UNet-128, IDDPM's cosine
VP schedule with 4000 steps and eps-prediction, batch 256, 100k steps, Adam 1e-4) for a GPU."""

RUNS = ("mondrian alone", "mondrian + dummies")
SCORES = "mondrian_scores.jsonl"
"""Where each run folder keeps the scores of its checkpoints (one JSON row per grid step)."""


def settings(scale: str = "cpu", **changes) -> dict:
    """The settings of ``scale`` (:data:`SCALES`) with ``changes`` applied (unknown names raise)."""
    return scale_settings(SCALES, scale, changes)


def run_config(s: dict, dummies: bool, *, seed: int = 0, overrides=(), progress: bool = True) -> Config:
    """The config of one run: the Mondrian images, plus ``dummies_per_mondrian`` dummies each if ``dummies``."""
    parts = {"mondrian": s["n_mondrian"]}
    if dummies:
        parts["gm_dummies"] = s["dummies_per_mondrian"] * s["n_mondrian"]
    vp = s["precond"] == "vp"
    d = {"data": {"name": "mixture", "params": {"parts": parts, "size": s["size"], "seed": seed}},
         "model": {"preset": s["preset"], "class_conditional": True, "precond": s["precond"],
                   **({"schedule": "cosine", "timesteps": 4000} if vp else {})},
         "train": {"steps": s["steps"], "batch_size": s["batch_size"], "lr": s["lr"], "ema_decay": s["ema_decay"],
                   "seed": seed, "threads": s["threads"], "checkpoints_per_decade": s["checkpoints_per_decade"],
                   "first_checkpoint": s["first_checkpoint"], "loss": "ddpm" if vp else "edm",
                   "save_every": max(s["steps"] // 10, 1), "progress": progress},
         "measure": {"enabled": False}}
    return apply_overrides(Config.from_dict(d), list(overrides))


def mondrian_samples(model, shape, *, n_samples: int, steps: int = 18, seed: int = 0) -> torch.Tensor:
    """``n_samples`` Mondrian-class images of a class-conditional denoiser: Heun on the EDM grid from
    ``torch.Generator().manual_seed(seed)`` noise (the same noise for every model and checkpoint), clipped
    to the image range [-1, 1] as when samples are saved as images."""
    noise = torch.randn(int(n_samples), *shape, generator=torch.Generator().manual_seed(int(seed)))
    with torch.no_grad():
        return sample(model.with_labels(MONDRIAN), noise, edm_sigmas(steps), method="heun").clamp(-1, 1)


def mondrian_scores(samples, train, train_labels, *, tol: float = 0.1, n_boot: int = 1000, seed: int = 0):
    """``(row, result)``: replicate fraction of Mondrian-class ``samples`` against the whole training set,
    the fraction of the Mondrian training images they replicate, and their Mondrian validity at ``tol``
    and at one 8-bit level, each with its 95% bootstrap interval; ``result`` is the
    :class:`compare.replicates.ReplicateResult`."""
    labels = torch.full((len(samples),), MONDRIAN, dtype=torch.int64)
    res = replicates(samples, train, train_labels=train_labels, sample_labels=labels, n_boot=n_boot, seed=seed,
                     progress=False)
    rep = res.summary.where(group=MONDRIAN)[0]
    row = {k: rep[k] for k in ("replicate_fraction", "replicate_fraction_lo", "replicate_fraction_hi",
                               "train_replicated_fraction", "train_replicated_fraction_lo",
                               "train_replicated_fraction_hi")}
    for name, v in zip(("validity", "validity_strict"),
                       validity_by_tolerance({"samples": samples}, (tol, STRICT_TOL), n_boot=n_boot, seed=seed)):
        row.update({name: v["validity"], f"{name}_lo": v["validity_lo"], f"{name}_hi": v["validity_hi"]})
    return row, res


class MondrianMetric:
    """Checkpoint metric of a run: :func:`mondrian_scores` of :func:`mondrian_samples` (fixed noise)."""

    def __init__(self, train, train_labels, s: dict, seed: int = 0):
        self.train, self.train_labels, self.s, self.seed = train, train_labels, s, seed

    def samples(self, model) -> torch.Tensor:
        return mondrian_samples(model, self.train.shape[1:], n_samples=self.s["n_samples"],
                                steps=self.s["sample_steps"], seed=self.seed + 1)

    def score(self, samples):
        return mondrian_scores(samples, self.train, self.train_labels, tol=self.s["tol"], n_boot=self.s["n_boot"],
                               seed=self.seed)

    def __call__(self, snap) -> dict:
        return self.score(self.samples(snap.model))[0]


def training_set(config: Config):
    """``(x, labels)`` of a run's training set (all images of the mixture train)."""
    data = mixture(**config.data.params)
    return data.train, data.train_labels


def run_replication(out_dir, s: dict, *, seed: int = 0, overrides=(), progress: bool = True):
    """Train (or resume) both runs under ``out_dir/runs``, then score every grid checkpoint (into
    ``SCORES`` of each run folder); returns ``(records, finals)``: one row per (run, checkpoint) and, per
    run, the samples, training set, labels and replicate result of the last checkpoint."""
    rows, finals = Records(), {}
    for name, dummies in zip(RUNS, (False, True)):
        cfg = run_config(s, dummies, seed=seed, overrides=overrides, progress=progress)
        x, labels = training_set(cfg)
        metric = MondrianMetric(x, labels, s, seed=seed)
        run_dir = Path(out_dir) / "runs" / name.replace(" + ", "_plus_").replace(" ", "_")
        train(cfg, run_dir)
        with cpu_threads(cfg.train.threads):
            scores = measure_run(run_dir, {"mondrian": metric}, overrides=['measure.metrics=["mondrian"]'], out=SCORES,
                                 progress=progress,
                                 device="cuda" if torch.cuda.is_available() else "cpu")
            samples = metric.samples(load_denoiser(run_dir, list_checkpoints(run_dir)[-1][0]))
            finals[name] = {"samples": samples, "train": x, "labels": labels, "result": metric.score(samples)[1]}
        trained = {r["step"]: r for r in read_metrics(run_dir)}          # step, wall time, loss of training
        for r in read_metrics(scores):
            rows.append({"run": name, "n_mondrian": s["n_mondrian"], "n_train": len(x), **trained[r["step"]], **r})
    return rows, finals


def validity_by_tolerance(sets: dict, tols=TOLS, *, n_boot: int = 1000, seed: int = 0) -> Records:
    """Mondrian validity (with its 95% bootstrap interval) of each ``{name: images}`` at each tolerance."""
    rows = Records()
    for name, images in sets.items():
        for t in tols:
            v = np.asarray(mondrian_validity(images, tol=t), dtype=np.float64)
            est, lo, hi = mean_interval(v, n_boot=n_boot, seed=seed)
            rows.append({"images": name, "n": len(v), "tol": float(t), "validity": float(est),
                         "validity_lo": float(lo), "validity_hi": float(hi)})
    return rows


def plot_replication(axes, rows: Records, s: dict):
    """Replicate fraction and validity (with intervals) vs training step, one curve per run."""
    for name, colour in zip(RUNS, ("crimson", "tab:blue")):
        sub = rows.where(run=name)
        step = sub.column("step").astype(float)
        for ax, col in zip(axes, ("replicate_fraction", "validity")):
            f = sub.column(col).astype(float)
            ax.plot(step, f, marker="o", color=colour, label=f"{name} (n = {int(sub[0]['n_train'])})")
            ax.fill_between(step, sub.column(f"{col}_lo").astype(float), sub.column(f"{col}_hi").astype(float),
                            color=colour, alpha=0.2)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("training step")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("Mondrian samples that replicate (d1/d2 < 1/3)")
    axes[0].set_title("replicate fraction, 95% bootstrap interval", fontsize=10)
    axes[1].set_ylabel(f"Mondrian samples obeying the rule (tol = {s['tol']:g})")
    axes[1].set_title("Mondrian validity, 95% bootstrap interval", fontsize=10)


def plot_tolerance(ax, rows: Records):
    """Validity at the last checkpoint vs the tolerance of the rule, next to the training images of each class."""
    styles = iter([("crimson", "-"), ("tab:blue", "-"), ("0.3", "--"), ("0.6", ":")])
    for name in dict.fromkeys(rows.column("images").tolist()):
        sub = rows.where(images=name)
        c, ls = next(styles)
        tol = sub.column("tol").astype(float)
        ax.plot(tol, sub.column("validity").astype(float), color=c, ls=ls, marker="o", label=name)
        ax.fill_between(tol, sub.column("validity_lo").astype(float), sub.column("validity_hi").astype(float),
                        color=c, alpha=0.15)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("tolerance: max - min per channel within a quadrant ([-1, 1] units)")
    ax.set_ylabel("fraction obeying the Mondrian rule")
    ax.set_title("validity vs tolerance, last checkpoint", fontsize=10)
    ax.legend(fontsize=7)


def final_summary(rows: Records) -> dict:
    """Per run: the metrics at its last checkpoint."""
    out = {}
    for name in RUNS:
        sub = rows.where(run=name)
        last = sub[int(np.argmax(sub.column("step").astype(float)))]
        out[name] = {k: last[k] for k in ("step", "n_train", "replicate_fraction", "replicate_fraction_lo",
                                          "replicate_fraction_hi", "train_replicated_fraction", "validity",
                                          "validity_lo", "validity_hi", "validity_strict", "validity_strict_lo",
                                          "validity_strict_hi", "wall_time")}
    return out


def yoon_replication(out_dir, *, scale: str = "cpu", seed: int = 0, overrides=(), progress: bool = True,
                     **changes):
    """Train both runs, score their Mondrian-class samples through training, plot; returns ``(paths, summary)``.

    ``changes`` override the settings of ``scale`` (:func:`settings`); ``overrides`` are config overrides
    (``section.key=value``) applied to both runs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    s = settings(scale, **changes)
    rows, finals = run_replication(out, s, seed=seed, overrides=overrides, progress=progress)
    paths = [rows.to_csv(out / "replication.csv")]
    mixed = finals[RUNS[1]]
    sets = {f"{name}: Mondrian-class samples": f["samples"] for name, f in finals.items()}
    sets.update({"training Mondrians": mixed["train"][mixed["labels"] == MONDRIAN],
                 "training GM dummies": mixed["train"][mixed["labels"] != MONDRIAN]})
    tol_rows = validity_by_tolerance(sets, n_boot=s["n_boot"], seed=seed)
    paths.append(tol_rows.to_csv(out / "validity_by_tolerance.csv"))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    plot_replication(axes[:2], rows, s)
    plot_tolerance(axes[2], tol_rows)
    fig.suptitle(f"Class-conditional {s['preset']} on {s['n_mondrian']} Mondrian {s['size']}x{s['size']} images,"
                 f" alone or with {s['dummies_per_mondrian'] * s['n_mondrian']} Gaussian-mixture dummies;"
                 f" {s['n_samples']} Mondrian-class samples (Heun, {s['sample_steps']} EDM steps)", fontsize=10)
    paths.append(atomic_save_figure(fig, out / "yoon_replication.png", dpi=110))
    plt.close(fig)
    for name, f in finals.items():
        paths.append(replicate_gallery(out / f"gallery_{name.replace(' + ', '_plus_').replace(' ', '_')}.png",
                                       f["samples"], f["train"], f["result"],
                                       title=f"{name}: samples and their two nearest training images"))
    summary = final_summary(rows)
    summary["validity_by_tolerance"] = {f"{r['images']} @ tol {r['tol']:.4g}": [r["validity"], r["validity_lo"],
                                                                             r["validity_hi"]] for r in tol_rows}
    paths.append(atomic_write_json(out / "summary.json", summary))
    paths.append(write_record(out, figure="yoon_replication", scale=scale, settings=s, seed=seed,
                              overrides=list(overrides)))
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("yoon_replication", __doc__, SCALES)
    p.add_argument("overrides", nargs="*", help="config overrides section.key=value for both runs")
    args = p.parse_args(argv)
    _, summary = yoon_replication(args.out, scale=args.scale, seed=args.seed, overrides=args.overrides)
    for name in RUNS:
        v = summary[name]
        print(f"{name:20s} (n = {v['n_train']}, step {v['step']}): replicate fraction {v['replicate_fraction']:.3f}"
              f" [{v['replicate_fraction_lo']:.3f}, {v['replicate_fraction_hi']:.3f}], validity {v['validity']:.3f}"
              f" [{v['validity_lo']:.3f}, {v['validity_hi']:.3f}], strict validity {v['validity_strict']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
