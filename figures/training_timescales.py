"""Two time scales of training (Bonnaire et al.): tau_gen flat in n, tau_mem ∝ n.

For each set-up (a network on a data set) and each training-set size n, one run of :func:`neural.train`
on the first n points of a fixed permutation of the split's training set (``data.subset``: the sets are
nested), with batch ``min(n, batch_max)`` (Bonnaire et al.: ``min(n, 512)``; see below) and ``steps_per_n * n``
steps, measured at every checkpoint of a log grid on fixed sampling noise:

* memorized fraction: samples whose nearest and second-nearest training points satisfy ``d1 / d2 < 1/3``
  (:func:`compare.replicates.replicates`, 95% bootstrap interval);
* quality: the sliced Wasserstein distance of the samples to the validation set (fresh data never
  trained on; lower is better). The mixture's exact mean log-likelihood is not used: it rewards samples
  collapsed onto the two centres (early, under-trained networks score best on it), so it does not
  say when the samples become good.

Time scales (:func:`compare.timescales.timescales`): ``tau_mem`` is the first step where the memorized
fraction reaches ``threshold`` (interpolated in log-step; ``inf`` when it never does within the run),
``tau_gen`` the first step that has made 90% of the whole improvement of the quality. The fit
``log tau_mem = a + b log n`` (:func:`compare.timescales.fit_tau_mem`) gives the slope ``b`` with its
Student-t and bootstrap intervals; Bonnaire et al. predict ``b = 1`` and ``tau_gen`` independent of n.

Scales: ``cpu`` (default; about 30 minutes of wall time on a busy shared 2-core machine, one thread per run): the
residual MLP (``mlp-small``) on two Gaussians at ±1 in d = 8 with n in {16, 32, 64, 128}, and the tiny
U-Net (``unet-tiny``) on 8x8 Mondrian images with n in {4, 8, 16, 32}. ``paper`` (a GPU): the MLP for d
in {8, 16, 32} with n in {64, ..., 1024} and Bonnaire et al.'s U-Net of width 32 (``bonnaire-w32``) on
32x32 Mondrian images with n in {128, ..., 2048} (Adam, lr 1e-4); the papers do not state the MLP's n
range or these learning rates, so those are our choices.

Reading it: Bonnaire et al. train with batch ``min(n, 512)`` and every n of theirs is at least 512, so
their batch is fixed. At the cpu scale every n is below 512; the default keeps the batch fixed the same
way, at the smallest n of the set-up (16 for the MLP, 4 for the U-Net). The literal rule ``min(n, 512)``
(``--batch-max 512``) would train full-batch at every n, and then, with Adam, memorization comes sooner
than ``tau_mem ∝ n`` (this machine, seed 0: slope 0.51 for the MLP, 0.19 for the tiny U-Net, against
about 1.35 and 1.22 with the fixed batch): the onset depends on the batch too (Marion & Wu: ``∝ 1/B``).
On 8x8 Mondrian images the tiny U-Net's sliced Wasserstein distance is lowest at the first checkpoints
and rises as the samples collapse onto training images, so its tau_gen there marks no real improvement.

Run: ``python -m figures.training_timescales --out DIR [--scale cpu|paper]`` (writes
``training_timescales.png``, ``curves.csv``, ``timescales.csv``, ``summary.json``, ``record.json`` and
the run folders under ``runs/``).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from compare.records import Records
from compare.timescales import HIGHER_IS_BETTER, fit_tau_mem, metric_rows, timescales
from figures.cli import figure_parser
from memgen.runs import atomic_save_figure, atomic_write_json, write_record
from figures.run_metrics import METRICS
from neural import load_config, train

MEMORIZATION = "replicate_fraction"


def mlp_setup(d: int, sizes, *, steps_per_n: int = 200, batch_max: int = 512, samples: int = 1000,
              n_val: int = 2000, lr: float = 1e-3) -> dict:
    """The residual MLP on Bonnaire et al.'s mixture (two Gaussians at ±1, unit variance) in ``d`` dimensions."""
    n_max = max(sizes)
    return dict(name=f"MLP, GMM d={d}", sizes=tuple(sizes), steps_per_n=steps_per_n, batch_max=batch_max,
                quality="sliced_wasserstein_val",
                overrides=["data.name=gmm", f"data.params={{n = {n_max + n_val}, d = {d}, n_train = {n_max}}}",
                           "model.preset=mlp-small", f"train.lr={lr}", "train.first_checkpoint=5",
                           "train.checkpoints_per_decade=8", "measure.probes=64", "measure.sigmas=16",
                           f"measure.samples={samples}", "measure.batch_size=1000",
                           'measure.metrics=["gap", "replicates", "sliced_wasserstein"]'])


def unet_setup(preset: str, size: int, sizes, *, steps_per_n: int = 120, batch_max: int = 512, samples: int = 200,
               n_val: int = 1000, lr: float = 2e-3) -> dict:
    """A U-Net ``preset`` on ``size x size`` Mondrian images, quality: sliced Wasserstein to the validation images."""
    n_max = max(sizes)
    return dict(name=f"U-Net {preset}, Mondrian {size}x{size}", sizes=tuple(sizes), steps_per_n=steps_per_n,
                batch_max=batch_max, quality="sliced_wasserstein_val",
                overrides=["data.name=mondrian",
                           f"data.params={{n = {n_max + n_val}, size = {size}, n_train = {n_max}}}",
                           f"model.preset={preset}", f"train.lr={lr}", "train.first_checkpoint=10",
                           "train.checkpoints_per_decade=6", "measure.probes=32", "measure.sigmas=8",
                           f"measure.samples={samples}", f"measure.batch_size={samples}",
                           'measure.metrics=["gap", "replicates", "sliced_wasserstein"]'])


def digits_setup(sizes, *, steps_per_n: int = 100, batch_max: int = 512, samples: int = 256, lr: float = 1e-3,
                 preset: str = "mlp-small") -> dict:
    """A network ``preset`` (default the residual MLP on the 64 pixels) on scikit-learn's 8x8 digits (real data):
    the first ``max(sizes)`` of a seeded permutation train, the other images are held out."""
    return dict(name=f"{preset}, digits 8x8", sizes=tuple(sizes), steps_per_n=steps_per_n, batch_max=batch_max,
                quality="sliced_wasserstein_val",
                overrides=["data.name=digits", f"data.params={{n_train = {max(sizes)}}}", f"model.preset={preset}",
                           f"train.lr={lr}", "train.first_checkpoint=5", "train.checkpoints_per_decade=8",
                           "measure.probes=64", "measure.sigmas=16", f"measure.samples={samples}",
                           f"measure.batch_size={samples}", "measure.fidelity=compare.fidelity:sliced_wasserstein"])


def setups(scale: str, *, batch_max: int | None = None) -> list[dict]:
    """The set-ups of a scale (module doc), with batch ``min(n, batch_max)``.

    ``batch_max=None``: the paper's 512 at the paper scale; at the cpu scale the smallest n of each
    set-up, i.e. one fixed batch for every n, as in the paper where every n is at least the batch.
    """
    if scale == "cpu":
        return [mlp_setup(8, (16, 32, 64, 128), batch_max=batch_max or 16),
                unet_setup("unet-tiny", 8, (4, 8, 16, 32), steps_per_n=200, batch_max=batch_max or 4)]
    if scale == "paper":
        return [*(mlp_setup(d, (64, 128, 256, 512, 1024), steps_per_n=400, samples=10000, batch_max=batch_max or 512)
                  for d in (8, 16, 32)),
                unet_setup("bonnaire-w32", 32, (128, 256, 512, 1024, 2048), steps_per_n=400, samples=2000, lr=1e-4,
                           batch_max=batch_max or 512)]
    raise ValueError(f"scale: expected 'cpu' or 'paper', got {scale!r}")


def run_config(setup: dict, n: int, *, seed: int = 0, threads: int = 1, device: str = "auto"):
    """The training config of one run: n points, ``min(n, batch_max)`` per batch, ``steps_per_n * n`` steps."""
    return load_config(None, [*setup["overrides"], f"data.subset={n}", f"train.batch_size={min(n, setup['batch_max'])}",
                              f"train.steps={setup['steps_per_n'] * n}", f"train.seed={seed}", f"measure.seed={seed}",
                              f"train.threads={threads}", f"train.device={device}", "train.progress=false",
                              f"train.save_every={setup['steps_per_n'] * n}"])


def run_dir(runs_dir, setup: dict, n: int) -> Path:
    """Folder of the run of ``setup`` with ``n`` points: ``runs_dir/<set-up name, alphanumeric>/n=<n>``."""
    slug = "".join(c if c.isalnum() else "_" for c in setup["name"]).strip("_")
    return Path(runs_dir) / slug / f"n={n}"


def run_setup(setup: dict, runs_dir, *, seed: int = 0, threads: int = 1, device: str = "auto") -> dict:
    """Train (or resume) every run of a set-up one after another; ``{n: run folder}``."""
    return {n: train(run_config(setup, n, seed=seed, threads=threads, device=device), run_dir(runs_dir, setup, n),
                     metrics=METRICS)
            for n in setup["sizes"]}


def curve_records(setup: dict, runs: dict) -> Records:
    """One row per (n, checkpoint): step, memorized fraction with its interval, quality, training loss."""
    rows = Records()
    for n, run in runs.items():
        for r in metric_rows(run):
            rows.append({"setup": setup["name"], "n": n, "step": r["step"], "train_loss": r["train_loss"],
                         MEMORIZATION: r[MEMORIZATION], f"{MEMORIZATION}_lo": r[f"{MEMORIZATION}_lo"],
                         f"{MEMORIZATION}_hi": r[f"{MEMORIZATION}_hi"], "quality": setup["quality"],
                         "quality_value": r[setup["quality"]]})
    return rows


def timescale_records(setup: dict, runs: dict, *, threshold: float = 0.1, tol: float = 0.1) -> Records:
    """One row per n: tau_mem (memorized fraction crosses ``threshold``), tau_gen, final fraction, best quality."""
    rows = Records()
    for n, run in runs.items():
        ts = timescales(run, quality=setup["quality"], memorization=MEMORIZATION, threshold=threshold, tol=tol)
        rows.append({"setup": setup["name"], "n": n, "steps": setup["steps_per_n"] * n,
                     **{k: ts[k] for k in ("tau_mem", "tau_gen", "final_memorization", "best_quality", "threshold")}})
    return rows


def fit_or_reason(rows: Records, key: str) -> dict:
    """:func:`compare.timescales.fit_tau_mem` of ``key`` against n, or ``{'error': why}`` when it cannot be fitted."""
    try:
        return fit_tau_mem(rows.column("n").astype(float), rows.column(key).astype(float))
    except ValueError as e:
        return {"error": str(e)}


def plot_setup(axes, setup: dict, curves: Records, scales: Records, fit: dict):
    """Memorized fraction vs step, quality vs step (one curve per n), and tau_mem, tau_gen vs n with the fit."""
    import matplotlib

    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, len(setup["sizes"])))
    ax_mem, ax_q, ax_tau = axes
    for n, c in zip(setup["sizes"], colours):
        sub = curves.where(n=n)
        t = sub.column("step").astype(float)
        ax_mem.plot(t, sub.column(MEMORIZATION).astype(float), color=c, marker=".", label=f"n = {n}")
        ax_mem.fill_between(t, sub.column(f"{MEMORIZATION}_lo").astype(float),
                            sub.column(f"{MEMORIZATION}_hi").astype(float), color=c, alpha=0.2)
        ax_q.plot(t, sub.column("quality_value").astype(float), color=c, marker=".", label=f"n = {n}")
    threshold = float(scales.column("threshold")[0])
    ax_mem.axhline(threshold, color="0.5", ls=":", lw=1, label=f"threshold {threshold:g}")
    for ax in (ax_mem, ax_q):
        ax.set_xscale("log")
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
    ax_mem.set_ylim(-0.03, 1.03)
    ax_mem.set_ylabel("memorized fraction (d1/d2 < 1/3)")
    ax_mem.set_title(f"{setup['name']}: memorization", fontsize=9)
    higher = setup["quality"].startswith(HIGHER_IS_BETTER)
    ax_q.set_ylabel(f"{setup['quality']} ({'higher' if higher else 'lower'} is better)")
    ax_q.set_title(f"{setup['name']}: sample quality", fontsize=9)
    if not higher:
        ax_q.set_yscale("log")

    n = scales.column("n").astype(float)
    tm, tg = scales.column("tau_mem").astype(float), scales.column("tau_gen").astype(float)
    done = np.isfinite(tm)
    ax_tau.plot(n[done], tm[done], "o", color="crimson", label="tau_mem")
    if (~done).any():
        ax_tau.plot(n[~done], scales.column("steps").astype(float)[~done], "^", mfc="none", color="crimson",
                    label="no memorization by the last step (censored)")
    ax_tau.plot(n, tg, "s", color="tab:blue", label="tau_gen")
    if "slope" in fit:
        grid = np.geomspace(n.min(), n.max(), 50)
        ax_tau.plot(grid, np.exp(fit["intercept"]) * grid ** fit["slope"], color="crimson", lw=1,
                    label=f"fit: slope {fit['slope']:.2f} [{fit['slope_lo']:.2f}, {fit['slope_hi']:.2f}]")
        ax_tau.plot(grid, tm[done][0] * grid / n[done][0], color="0.5", ls="--", lw=1, label="slope 1 (∝ n)")
    ax_tau.set_xscale("log")
    ax_tau.set_yscale("log")
    ax_tau.set_xlabel("training-set size n")
    ax_tau.set_ylabel("training steps")
    ax_tau.set_title(f"{setup['name']}: time scales (batch min(n, {setup['batch_max']}), "
                     f"{setup['steps_per_n']} n steps)", fontsize=9)
    ax_tau.legend(fontsize=7)


def setup_summary(scales: Records, fit: dict) -> dict:
    """tau_mem, tau_gen and the final memorized fraction per n, and the fit."""
    def finite(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    keys = ("tau_mem", "tau_gen", "final_memorization", "best_quality", "steps")
    per_n = {str(r["n"]): {k: finite(r[k]) for k in keys} for r in scales}
    return {"per_n": per_n, "fit_tau_mem": fit}


def training_timescales(out_dir, *, scale: str = "cpu", setups_=None, batch_max: int | None = None, threshold: float = 0.1,
                        tol: float = 0.1, seed: int = 0, threads: int = 1, device: str = "auto"):
    """Train every run of every set-up (``setups_``, default :func:`setups` of ``scale`` with ``batch_max``),
    measure the time scales, plot; returns ``(paths, summary)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    chosen = setups(scale, batch_max=batch_max) if setups_ is None else list(setups_)
    curves, scales, summary = Records(), Records(), {}
    fig, axes = plt.subplots(len(chosen), 3, figsize=(15, 4.3 * len(chosen)), squeeze=False, constrained_layout=True)
    for setup, ax_row in zip(chosen, axes):
        runs = run_setup(setup, out / "runs", seed=seed, threads=threads, device=device)
        c, s = curve_records(setup, runs), timescale_records(setup, runs, threshold=threshold, tol=tol)
        fit = fit_or_reason(s, "tau_mem")
        plot_setup(ax_row, setup, c, s, fit)
        curves += c
        scales += s
        summary[setup["name"]] = setup_summary(s, fit)
    fig.suptitle(f"Bonnaire et al.'s two time scales ({scale} scale): memorized fraction (threshold {threshold:g}) "
                 f"and quality vs training step; seed {seed}")
    paths = [atomic_save_figure(fig, out / "training_timescales.png", dpi=100)]
    plt.close(fig)
    paths += [curves.to_csv(out / "curves.csv"), scales.to_csv(out / "timescales.csv"),
              atomic_write_json(out / "summary.json", summary),
              write_record(out, figure="training_timescales", scale=scale, threshold=threshold, tol=tol, seed=seed,
                           setups=chosen)]
    return paths, summary


def main(argv=None) -> int:
    p = figure_parser("training_timescales", __doc__, ("cpu", "paper"))
    p.add_argument("--batch-max", type=int, default=None,
                   help="batch min(n, BATCH_MAX); default: 512 (paper scale), the smallest n (cpu scale)")
    p.add_argument("--threshold", type=float, default=0.1, help="memorized fraction that defines tau_mem")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    args = p.parse_args(argv)
    _, summary = training_timescales(args.out, scale=args.scale, batch_max=args.batch_max, threshold=args.threshold,
                                     seed=args.seed, threads=args.threads)
    for name, s in summary.items():
        for n, v in s["per_n"].items():
            print(f"{name:32s} n = {n:>5s}: tau_mem = {v['tau_mem']}, tau_gen = {v['tau_gen']}, "
                  f"final memorized fraction = {v['final_memorization']:.3f}")
        fit = s["fit_tau_mem"]
        print(f"{name:32s} slope of log tau_mem vs log n: " + (f"{fit['slope']:.3f} [{fit['slope_lo']:.3f}, "
              f"{fit['slope_hi']:.3f}] (t, 95%), bootstrap [{fit['slope_boot_lo']:.3f}, {fit['slope_boot_hi']:.3f}]"
              if "slope" in fit else fit["error"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
