"""Marion & Wu's claims 11-12: memorization onset against batch size and model size; train- vs test-referenced fidelity.

Both claims run on every data set of the scale's ``data_sets`` (at cpu scale: scikit-learn's handwritten
digits and 8x8 Mondrian images, side by side); each data set is judged by the same criterion and the
verdict combines them (all conditions met on every data set: reproduced). The batch sweep (and claim 12)
runs at the data set's ``width`` (default ``width``): one that memorizes within the step budget (at cpu
scale width 128 never reaches 10% replicates of 64 Mondrian images in 4,000 steps at any batch, width 256
does), so that onsets can be measured at all; the width sweep runs at batch ``batch``.

Claim 11. Criterion (fixed before the run): with tau_mem = the first checkpoint where the replicate
fraction reaches 0.1 (:func:`compare.timescales.tau_mem`, in training steps), over all seeds, (a) the 95%
interval of the log-log slope of tau_mem against the batch size overlaps [-1.2, -0.8] (onset ∝ 1/B in
steps: a fixed number of images seen); (b) that against the network width lies entirely below 0 (larger
models memorize sooner; straddling 0: partial). Runs that never memorize are left out of the fit and counted.

Claim 12. Criterion: the relative difference of the sliced Wasserstein distances of the samples to the
training set and to held-out data, ``(SW_val - SW_train) / SW_val``, at the last checkpoint has its
interval over seeds overlapping [-0.1, 0.1] (train- and test-referenced fidelity nearly identical).
The held-out reference set is larger than the training set. That cannot make a positive difference:
``SW^2`` is jointly convex and an (m+1)-point empirical measure is the mean of its m-point leave-one-out
measures, so for samples independent of the split ``E SW^2`` to m reference points does not grow with m;
with exchangeable training and held-out points a model whose samples do not depend on its training set
gives ``E SW_val^2 <= E SW_train^2``: a difference that is positive beyond noise means samples nearer the
training set.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.records import Records
from compare.timescales import timescales
from neural import read_metrics
from neural.config import toml_value

from .base import Claim, Outcome, loglog_fit, new_figure, progress_bar, save_figure, fmt, fmt_interval
from .networks import trained
from .verdicts import interval_check, verdict

PAPER = "Marion & Wu"



def _overrides(s: dict, data: dict, batch: int, width: int) -> list:
    return [f"data.name={data['name']}", f"data.params={toml_value(data['params'])}", f"model.preset={s['preset']}",
            f"model.params={{{s['width_key']} = {width}}}", f"train.steps={s['steps']}", f"train.batch_size={batch}",
            f"train.lr={s['lr']}", "train.first_checkpoint=10", f"train.checkpoints_per_decade={s['per_decade']}",
            f"train.save_every={s['steps']}", 'measure.metrics=["replicates", "sliced_wasserstein"]',
            f"measure.samples={s['samples']}", f"measure.batch_size={s['samples']}"]


def _width(s: dict, data: dict) -> int:
    """The width of the batch sweep (and of claim 12) on ``data``: its own ``width``, else the scale's."""
    return data.get("width", s["width"])


def onset(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    runs = [(data, seed, kind, v) for data in s["data_sets"] for seed in seeds
            for kind, values in (("batch", s["batches"]), ("width", s["widths"])) for v in values]
    rows = Records()
    for data, seed, kind, v in progress_bar(runs, 11, progress):
        b, w = (v, _width(s, data)) if kind == "batch" else (s["batch"], v)
        run = trained(out.parent / "runs", _overrides(s, data, b, w), seed)
        ts = timescales(run, memorization="replicate_fraction", threshold=0.1)
        rows.append({"data": data["name"], "seed": seed, "sweep": kind, "batch": b, "width": w,
                     "tau_mem": ts["tau_mem"]})
    fits, scores, values, intervals = {}, [], [], []
    fig, axes = new_figure(2, figsize=(9, 3.5))
    for data, marker in zip(s["data_sets"], "os^v"):
        name = data["name"]
        for ax, kind in zip(axes, ("batch", "width")):
            sub = rows.where(data=name, sweep=kind)
            fit = fits[f"{name}/{kind}"] = loglog_fit(sub.column(kind).astype(float),
                                                      sub.column("tau_mem").astype(float), seeds[0])
            fit["never_memorized"] = int(np.isinf(sub.column("tau_mem").astype(float)).sum())
            target = dict(low=-1.2, high=-0.8) if kind == "batch" else dict(high=0.0, strict=True)
            scores.append(interval_check(fit["slope_boot_lo"], fit["slope_boot_hi"], **target))
            finite = [r for r in sub if np.isfinite(r["tau_mem"])]          # never memorized: not drawn
            ax.plot([r[kind] for r in finite], [r["tau_mem"] for r in finite], marker, alpha=0.7,
                    label=f"{name} (slope {fmt(fit['slope'])})")
        fb, fw = fits[f"{name}/batch"], fits[f"{name}/width"]
        censored = fb["never_memorized"] + fw["never_memorized"]
        values.append(f"{name}: {fmt(fb['slope'])} vs log B, {fmt(fw['slope'])} vs log width"
                      + (f" (never memorized: {censored} of {len(rows.where(data=name))} runs)" if censored else ""))
        intervals.append(f"{fmt_interval(fb['slope_boot_lo'], fb['slope_boot_hi'])}; "
                         f"{fmt_interval(fw['slope_boot_lo'], fw['slope_boot_hi'])}")
    widths = "/".join(str(_width(s, d)) for d in s["data_sets"])
    for ax, kind, fixed in zip(axes, ("batch", "width"), (f"width {widths}", f"batch {s['batch']}")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{kind} ({fixed})")
        ax.set_ylabel("tau_mem (steps to 10% replicates)")
        ax.legend(fontsize=7)
    save_figure(fig, out)
    rows.to_csv(out / "onsets.csv")
    return Outcome("slope of log tau_mem: " + "; ".join(values), " / ".join(intervals), verdict(scores), "claim.png",
                   {"fits": fits, "runs": list(rows), "scores": scores})


def fidelity_gap(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    curves = {}
    for data, seed in progress_bar([(d, sd) for d in s["data_sets"] for sd in seeds], 12, progress):
        rows = read_metrics(trained(out.parent / "runs", _overrides(s, data, s["batch"], _width(s, data)), seed))
        curves.setdefault(data["name"], []).append(
            [(r["step"], r["sliced_wasserstein_train"], r["sliced_wasserstein_val"], r["replicate_fraction"])
             for r in rows])
    fig, axes = new_figure(len(curves), figsize=(5.5 * len(curves), 4))
    rel, scores, values, intervals = {}, [], [], []
    for ax, (name, cs) in zip(np.atleast_1d(axes), curves.items()):
        rel[name] = [(c[-1][2] - c[-1][1]) / c[-1][2] for c in cs]
        scores.append(interval_check(min(rel[name]), max(rel[name]), low=-0.1, high=0.1))
        values.append(f"{name}: {fmt(np.mean(rel[name]))} (replicates {fmt(np.mean([c[-1][3] for c in cs]))})")
        intervals.append(fmt_interval(min(rel[name]), max(rel[name])))
        c = np.asarray(cs[0])
        ax.plot(c[:, 0], c[:, 1], label="SW to training set")
        ax.plot(c[:, 0], c[:, 2], "--", label="SW to held-out data")
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("sliced Wasserstein distance")
        ax.set_title(f"{name} (seed {seeds[0]})", fontsize=9)
        ax.legend(fontsize=7, loc="upper center")
        ax2 = ax.twinx()
        ax2.plot(c[:, 0], c[:, 3], ":", color="k")
        ax2.set_ylabel("replicate fraction (dotted)")
    save_figure(fig, out)
    return Outcome("(SW_val - SW_train) / SW_val at the last checkpoint: " + "; ".join(values),
                   "; ".join(intervals), verdict(scores), "claim.png",
                   {"relative_difference": rel, "curves": curves, "scores": scores})


_QUICK = dict(data_sets=(dict(name="gmm", params=dict(n=520, d=4, n_train=8)),), preset="mlp-small",
              width_key="width", width=128, batch=8, batches=(2, 4, 8), widths=(32, 128, 512), steps=200, lr=2e-3,
              samples=64, per_decade=4)
_CPU = dict(data_sets=(dict(name="digits", params=dict(n_train=64)),
                       dict(name="mondrian", params=dict(size=8, n=1064, n_train=64), width=256)),
            preset="mlp-small", width_key="width", width=128, batch=64, batches=(32, 64, 128),
            widths=(128, 256, 512), steps=4000, lr=1e-3, samples=256, per_decade=8)
_PAPER = dict(data_sets=(dict(name="cifar10", params=dict(n_train=2048)),), preset="marion-93m",
              width_key="base_channels", width=128, batch=128, batches=(16, 32, 64, 128), widths=(32, 64, 128, 192),
              steps=400000, lr=1e-4, samples=5120, per_decade=8)

CLAIMS = [
    Claim(11, PAPER, "memorization onset in steps ∝ 1/B (a fixed number of images seen), and larger models "
          "memorize sooner", "onset ∝ 1/B; larger models memorize sooner",
          {"quick": _QUICK, "cpu": _CPU, "paper": _PAPER}, onset),
    Claim(12, PAPER, "train- and test-referenced fidelity are nearly identical through training (that gap says "
          "nothing about novelty)", "nearly identical curves", {"quick": _QUICK, "cpu": _CPU, "paper": _PAPER},
          fidelity_gap),
]
