"""Marion & Wu's claims 11-12: memorization onset against batch size and model size; train- vs test-referenced fidelity.

Claim 11. Criterion (fixed before the run): with tau_mem = the first checkpoint where the replicate
fraction reaches 0.1 (:func:`compare.timescales.tau_mem`), over all seeds, (a) the 95% interval of the
log-log slope of tau_mem against the batch size overlaps [-1.2, -0.8] (onset ∝ 1/B); (b) that against
the network width lies entirely below 0 (larger models memorize sooner; straddling 0: partial).

Claim 12. Criterion: the relative difference of the sliced Wasserstein distances of the samples to the
training set and to held-out data, ``(SW_val - SW_train) / SW_val``, at the last checkpoint has its
interval over seeds overlapping [-0.1, 0.1] (train- and test-referenced fidelity nearly identical).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.records import Records
from compare.timescales import fit_tau_mem, timescales
from neural import read_metrics
from neural.config import toml_value

from .base import Claim, Outcome, new_figure, progress_bar, save_figure, fmt, fmt_interval
from .networks import trained
from .verdicts import interval_check, verdict

PAPER = "Marion & Wu"



def _overrides(s: dict, batch: int, width: int) -> list:
    return [f"data.name={s['data']}", f"data.params={toml_value(s['data_params'])}", f"model.preset={s['preset']}",
            f"model.params={{{s['width_key']} = {width}}}", f"train.steps={s['steps']}", f"train.batch_size={batch}",
            f"train.lr={s['lr']}", "train.first_checkpoint=10", f"train.checkpoints_per_decade={s['per_decade']}",
            f"train.save_every={s['steps']}", 'measure.metrics=["replicates", "sliced_wasserstein"]',
            f"measure.samples={s['samples']}", f"measure.batch_size={s['samples']}"]


def _fit(x, tau, seed):
    try:
        return fit_tau_mem(x, tau, seed=seed)
    except ValueError as e:
        return {"error": str(e), "slope": float("nan"), "slope_boot_lo": float("nan"), "slope_boot_hi": float("nan")}


def onset(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    rows = Records()
    for seed in progress_bar(seeds, 11, progress):
        for kind, values in (("batch", s["batches"]), ("width", s["widths"])):
            for v in values:
                b, w = (v, s["width"]) if kind == "batch" else (s["batch"], v)
                run = trained(out.parent / "runs", _overrides(s, b, w), seed)
                ts = timescales(run, memorization="replicate_fraction", threshold=0.1)
                rows.append({"seed": seed, "sweep": kind, "batch": b, "width": w, "tau_mem": ts["tau_mem"]})
    fb = _fit(rows.where(sweep="batch").column("batch").astype(float),
              rows.where(sweep="batch").column("tau_mem").astype(float), seeds[0])
    fw = _fit(rows.where(sweep="width").column("width").astype(float),
              rows.where(sweep="width").column("tau_mem").astype(float), seeds[0])
    scores = [interval_check(fb["slope_boot_lo"], fb["slope_boot_hi"], low=-1.2, high=-0.8),
              interval_check(fw["slope_boot_lo"], fw["slope_boot_hi"], high=0.0, strict=True)]
    fig, axes = new_figure(2, figsize=(9, 3.5))
    for ax, kind in zip(axes, ("batch", "width")):
        sub = [r for r in rows.where(sweep=kind) if np.isfinite(r["tau_mem"])]      # never memorized: not drawn
        ax.plot([r[kind] for r in sub], [r["tau_mem"] for r in sub], "o")
        ax.set_xscale("log")
        ax.set_yscale("log" if sub else "linear")
        ax.set_xlabel(kind)
        ax.set_ylabel("tau_mem (steps)")
    save_figure(fig, out)
    rows.to_csv(out / "onsets.csv")
    return Outcome(f"slope of log tau_mem: {fmt(fb['slope'])} vs log B, {fmt(fw['slope'])} vs log width",
                   f"{fmt_interval(fb['slope_boot_lo'], fb['slope_boot_hi'])}; "
                   f"{fmt_interval(fw['slope_boot_lo'], fw['slope_boot_hi'])}", verdict(scores), "claim.png",
                   {"fit_batch": fb, "fit_width": fw, "runs": list(rows), "scores": scores})


def fidelity_gap(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    curves = []
    for seed in progress_bar(seeds, 12, progress):
        rows = read_metrics(trained(out.parent / "runs", _overrides(s, s["batch"], s["width"]), seed))
        curves.append([(r["step"], r["sliced_wasserstein_train"], r["sliced_wasserstein_val"],
                        r["replicate_fraction"]) for r in rows])
    rel = [(c[-1][2] - c[-1][1]) / c[-1][2] for c in curves]
    scores = [interval_check(min(rel), max(rel), low=-0.1, high=0.1)]
    fig, ax = new_figure(figsize=(5.5, 4))
    c = np.asarray(curves[0])
    ax.plot(c[:, 0], c[:, 1], label="SW to training set")
    ax.plot(c[:, 0], c[:, 2], "--", label="SW to held-out data")
    ax.set_xlabel("step")
    ax.set_ylabel("sliced Wasserstein distance")
    ax2 = ax.twinx()
    ax2.plot(c[:, 0], c[:, 3], ":", color="k", label="replicate fraction")
    ax2.set_ylabel("replicate fraction (dotted)")
    save_figure(fig, out)
    return Outcome(f"(SW_val - SW_train) / SW_val = {fmt(np.mean(rel))} at the last checkpoint "
                   f"(replicates {fmt(np.mean([c[-1][3] for c in curves]))})", fmt_interval(min(rel), max(rel)),
                   verdict(scores), "claim.png", {"relative_difference": rel, "curves": curves, "scores": scores})


_QUICK = dict(data="gmm", data_params=dict(n=520, d=4, n_train=8), preset="mlp-small", width_key="width", width=128,
              batch=8, batches=(2, 4, 8), widths=(32, 128, 512), steps=200, lr=2e-3, samples=64, per_decade=4)
_CPU = dict(data="digits", data_params=dict(n_train=64), preset="mlp-small", width_key="width", width=128, batch=16,
            batches=(8, 16, 32), widths=(64, 128, 256), steps=4000, lr=1e-3, samples=256, per_decade=8)
_PAPER = dict(data="cifar10", data_params=dict(n_train=2048), preset="marion-93m", width_key="base_channels",
              width=128, batch=128, batches=(16, 32, 64, 128), widths=(32, 64, 128, 192), steps=400000, lr=1e-4,
              samples=5120, per_decade=8)

CLAIMS = [
    Claim(11, PAPER, "memorization starts sooner with smaller batches (onset ∝ 1/B) and larger models",
          "onset ∝ 1/B; larger models memorize sooner", {"quick": _QUICK, "cpu": _CPU, "paper": _PAPER}, onset),
    Claim(12, PAPER, "train- and test-referenced fidelity are nearly identical through training (that gap says "
          "nothing about novelty)", "nearly identical curves", {"quick": _QUICK, "cpu": _CPU, "paper": _PAPER},
          fidelity_gap),
]
