"""Yoon, Choi, Kwon & Ryu's claims 8-10: capacity grows with width; dummies stop replication; the minority is memorized.

Claim 8. Criterion (fixed before the run): with capacity = the largest training-set size whose replicate
fraction (ratio criterion, 1/3) is at least 0.5 (0 if none), per width and seed, (a) the widest network's
capacity exceeds the narrowest's at every seed (lowest over seeds > highest over seeds) and (b) the mean
capacity does not decrease from one width to the next. Judged on every data set of the scale's
``data_sets`` (at cpu scale U-Nets of base width 8, 16 and 32 on scikit-learn's digits and on 8x8 Mondrian
images, each size and width trained for the same 2,000 steps); all conditions met on every data set:
reproduced.

Claim 9. Criterion: (a) the replicate fraction of the unconditional Mondrian-alone run has its interval
overlapping [0.5, 1]; (b) that of the Mondrian class of the class-conditional run with 3 dummies per
Mondrian, trained for matched passes over the Mondrian images (4x the steps), overlaps [0, 0.1]; (c) its
Mondrian validity's interval overlaps the alone run's validity +-0.1 (it has learned the class).

Claim 10. Criterion: on a Mondrian majority with a Random Ink minority (unconditional model, a sample's
class = that of its nearest training image), (a) the minority's replicate fraction overlaps [0.5, 1];
(b) the majority's overlaps [0, 0.5]; (c) the majority's interval lies below the minority's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.bootstrap import mean_interval
from compare.fidelity import mondrian_validity
from compare.records import Records
from compare.replicates import replicates
from memgen import edm_sigmas, sample
from memgen.data import load
from neural.config import toml_value

from .base import Claim, Outcome, new_figure, progress_bar, save_figure, envelope, fmt, fmt_interval
from .networks import checkpoint_models, final_row, trained
from .verdicts import below, interval_check, verdict

PAPER = "Yoon et al."

MONDRIAN = 0
"""Class index of the Mondrian images in every mixture of these claims (the first part of the mixture)."""


def mondrian_samples(model, shape, *, n_samples: int, steps: int = 18, seed: int = 0) -> torch.Tensor:
    """``n_samples`` Mondrian-class images of a class-conditional denoiser: Heun on the EDM grid from
    ``torch.Generator().manual_seed(seed)`` noise, clipped to the image range [-1, 1] as saved images are."""
    noise = torch.randn(int(n_samples), *shape, generator=torch.Generator().manual_seed(int(seed)))
    with torch.no_grad():
        return sample(model.with_labels(MONDRIAN), noise, edm_sigmas(steps), method="heun").clamp(-1, 1)


def mondrian_scores(samples, train, train_labels, *, tol: float, n_boot: int = 1000, seed: int = 0) -> dict:
    """Replicate fraction of Mondrian-class ``samples`` against the whole training set (a sample replicates
    when ``d1 / d2 < 1/3`` for its two nearest training images, :func:`compare.replicates.replicates`) and
    their Mondrian validity (four flat quadrants, max - min per channel within ``tol``,
    :func:`compare.fidelity.mondrian_validity`), each with its 95% percentile-bootstrap interval over samples:
    ``replicate_fraction``, ``validity`` and their ``_lo``/``_hi`` bounds."""
    labels = torch.full((len(samples),), MONDRIAN, dtype=torch.int64)
    rep = replicates(samples, train, train_labels=train_labels, sample_labels=labels, n_boot=n_boot, seed=seed,
                     progress=False).summary.where(group=MONDRIAN)[0]
    valid = np.asarray(mondrian_validity(samples, tol=tol), dtype=np.float64)
    est, lo, hi = mean_interval(valid, n_boot=n_boot, seed=seed)
    return {**{k: rep[k] for k in ("replicate_fraction", "replicate_fraction_lo", "replicate_fraction_hi")},
            "validity": float(est), "validity_lo": float(lo), "validity_hi": float(hi)}



def _base(s: dict, steps: int) -> list:
    return [f"model.preset={s['preset']}", f"train.steps={steps}", f"train.batch_size={s['batch_size']}",
            f"train.lr={s['lr']}", f"train.first_checkpoint={steps}", f"train.save_every={steps}"]


def capacity(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    runs = [(d, sd, w, n) for d in s["data_sets"] for sd in seeds for w in s["widths"] for n in s["sizes"]]
    rows = Records()
    for data, seed, w, n in progress_bar(runs, 8, progress):
        ov = [f"data.name={data['name']}", f"data.params={toml_value({**data['params'], 'n_train': n})}",
              *_base(s, s["steps"]), f"model.params={{{s['width_key']} = {w}}}", 'measure.metrics=["replicates"]',
              f"measure.samples={s['samples']}", f"measure.batch_size={s['samples']}"]
        r = final_row(trained(out.parent / "runs", ov, seed))
        rows.append({"data": data["name"], "seed": seed, "width": w, "n": n,
                     "replicate_fraction": r["replicate_fraction"], "lo": r["replicate_fraction_lo"],
                     "hi": r["replicate_fraction_hi"]})
    widths = sorted(s["widths"])
    caps, scores, values, intervals = {}, [], [], []
    fig, axes = new_figure(len(s["data_sets"]), figsize=(5 * len(s["data_sets"]), 4))
    for ax, data in zip(np.atleast_1d(axes), s["data_sets"]):
        name = data["name"]
        sub = rows.where(data=name)
        cap = caps[name] = {w: [max([r["n"] for r in sub.where(seed=sd, width=w) if r["replicate_fraction"] >= 0.5],
                                    default=0) for sd in seeds] for w in widths}
        means = [np.mean(cap[w]) for w in widths]
        scores += [below(max(cap[widths[0]]), min(cap[widths[-1]])), 1.0 if all(np.diff(means) >= 0) else 0.0]
        values.append(f"{name}: " + ", ".join(f"{fmt(np.mean(cap[w]))} (width {w})" for w in widths))
        intervals.append("; ".join(fmt_interval(min(cap[w]), max(cap[w])) for w in widths))
        for w in widths:                         # mean over seeds, bars: the envelope of the per-seed intervals
            q = np.array([envelope(*(sub.where(width=w, n=n).column(k).astype(float)
                                     for k in ("replicate_fraction", "lo", "hi"))) for n in s["sizes"]])
            ax.errorbar(np.asarray(s["sizes"], dtype=float), q[:, 0], yerr=[q[:, 0] - q[:, 1], q[:, 2] - q[:, 0]],
                        marker="o", capsize=2, label=f"{s['width_key']} {w}")
        ax.axhline(0.5, color="0.5", lw=0.7)
        ax.set_xscale("log")
        ax.set_xlabel("training-set size n")
        ax.set_ylabel(f"replicate fraction after {s['steps']} steps")
        ax.set_title(f"{s['preset']} on {name}", fontsize=9)
    save_figure(fig, out)
    rows.to_csv(out / "replicates.csv")
    return Outcome("capacity " + "; ".join(values), " / ".join(intervals), verdict(scores), "claim.png",
                   {"capacity": caps, "runs": list(rows), "scores": scores})


def dummies(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    res = {"alone": [], "dummies": []}
    for seed in progress_bar(seeds, 9, progress):
        n_m, k = s["n_mondrian"], s["dummies_per_mondrian"]
        for name, parts, cond, steps in (("alone", {"mondrian": n_m}, False, s["steps"]),
                                         ("dummies", {"mondrian": n_m, "gm_dummies": k * n_m}, True,
                                          s["steps"] * (1 + k))):
            params = {"parts": parts, "size": s["size"], "seed": seed}
            ov = ["data.name=mixture", f"data.params={toml_value(params)}", *_base(s, steps),
                  f"model.class_conditional={'true' if cond else 'false'}", "measure.enabled=false"]
            run = trained(out.parent / "runs", ov, seed)
            model = checkpoint_models(run)[-1][1]
            data = load("mixture", **params)
            if cond:
                x = mondrian_samples(model, data.shape, n_samples=s["samples"], seed=seed + 1)
            else:
                noise = torch.randn(s["samples"], *data.shape, generator=torch.Generator().manual_seed(seed + 1))
                with torch.no_grad():
                    x = sample(model, noise, edm_sigmas(18)).clamp(-1, 1)
            row = mondrian_scores(x, data.train, data.train_labels, tol=s["tol"], n_boot=500, seed=seed)
            res[name].append(row)
    q = {f"{name}_{key}": envelope([r[key] for r in rs], [r[f"{key}_lo"] for r in rs], [r[f"{key}_hi"] for r in rs])
         for name, rs in res.items() for key in ("replicate_fraction", "validity")}
    va = q["alone_validity"][0]
    scores = [interval_check(*q["alone_replicate_fraction"][1:], low=0.5, high=1.0),
              interval_check(*q["dummies_replicate_fraction"][1:], low=0.0, high=0.1),
              interval_check(*q["dummies_validity"][1:], low=va - 0.1, high=va + 0.1)]
    fig, ax = new_figure(figsize=(5.5, 4))
    for j, key in enumerate(("replicate_fraction", "validity")):
        for i, name in enumerate(("alone", "dummies")):
            v, lo, hi = q[f"{name}_{key}"]
            ax.bar(2 * j + i * 0.8, v, 0.7, yerr=[[v - lo], [hi - v]], color=["tab:red", "tab:blue"][i],
                   label=name if j == 0 else None)
    ax.set_xticks([0.4, 2.4], ["replicate fraction", "Mondrian validity"])
    save_figure(fig, out, log_x=False)
    return Outcome(f"replicates {fmt(q['alone_replicate_fraction'][0])} alone, {fmt(q['dummies_replicate_fraction'][0])}"
                   f" with dummies; validity {fmt(va)} / {fmt(q['dummies_validity'][0])}",
                   f"{fmt_interval(*q['alone_replicate_fraction'][1:])}; {fmt_interval(*q['dummies_replicate_fraction'][1:])}"
                   f"; {fmt_interval(*q['alone_validity'][1:])} / {fmt_interval(*q['dummies_validity'][1:])}",
                   verdict(scores), "claim.png", {k: list(v) for k, v in q.items()} | {"scores": scores})


def minority(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    per = []
    for seed in progress_bar(seeds, 10, progress):
        params = {"parts": {"mondrian": s["n_major"], "random_ink": s["n_minor"]}, "size": s["size"], "seed": seed}
        ov = ["data.name=mixture", f"data.params={toml_value(params)}", *_base(s, s["steps"]), "measure.enabled=false"]
        model = checkpoint_models(trained(out.parent / "runs", ov, seed))[-1][1]
        data = load("mixture", **params)
        noise = torch.randn(s["samples"], *data.shape, generator=torch.Generator().manual_seed(seed + 1))
        with torch.no_grad():
            x = sample(model, noise, edm_sigmas(18)).clamp(-1, 1)
        summ = replicates(x, data.train, train_labels=data.train_labels, n_boot=500, seed=seed, progress=False).summary
        per.append({c: summ.where(group=c)[0] for c in (0, 1)})
    q = {c: envelope([p[c]["replicate_fraction"] for p in per], [p[c]["replicate_fraction_lo"] for p in per],
                     [p[c]["replicate_fraction_hi"] for p in per]) for c in (0, 1)}
    major, minor = q[MONDRIAN], q[1]
    scores = [interval_check(*minor[1:], low=0.5, high=1.0), interval_check(*major[1:], low=0.0, high=0.5),
              below(major[2], minor[1])]
    fig, ax = new_figure(figsize=(4.5, 3.5))
    for i, (name, v) in enumerate((("Mondrian (majority)", major), ("Random Ink (minority)", minor))):
        ax.bar(i, v[0], 0.6, yerr=[[v[0] - v[1]], [v[2] - v[0]]])
    ax.set_xticks([0, 1], ["Mondrian (majority)", "Random Ink (minority)"])
    ax.set_ylabel("replicate fraction")
    save_figure(fig, out, log_x=False)
    return Outcome(f"replicates: minority {fmt(minor[0])}, majority {fmt(major[0])}",
                   f"{fmt_interval(*minor[1:])}; {fmt_interval(*major[1:])}", verdict(scores), "claim.png",
                   {"majority": list(major), "minority": list(minor), "scores": scores,
                    "n_samples": [{c: p[c]["n_samples"] for c in (0, 1)} for p in per]})


CLAIMS = [
    Claim(8, PAPER, "memorization capacity (largest n still replicated) grows with network width (H1)",
          "capacity about doubles per width doubling",
          {"quick": dict(data_sets=(dict(name="gmm", params=dict(n=600, d=4)),), preset="mlp-small",
                         width_key="width", widths=(16, 64, 256), sizes=(2, 8), steps=300, batch_size=8, lr=2e-3,
                         samples=64),
           "cpu": dict(data_sets=(dict(name="digits", params=dict()),
                                  dict(name="mondrian", params=dict(size=8, n=1280))),
                       preset="unet-tiny", width_key="base_channels", widths=(8, 16, 32), sizes=(32, 64, 128),
                       steps=2000, batch_size=32, lr=1e-3, samples=256),
           "paper": dict(data_sets=(dict(name="mondrian", params=dict(n=32000, size=32)),), preset="yoon-unet-64",
                         width_key="base_channels", widths=(64, 128, 256), sizes=(500, 1000, 2000, 4000, 8000, 16000),
                         steps=200000, batch_size=128, lr=1e-4, samples=2000)}, capacity),
    Claim(9, PAPER, "Mondrian alone is replicated; with Gaussian-mixture dummies (class-conditional) it is "
          "generated validly but not replicated (H2)", "92% replicates alone, 0.2% with dummies",
          {"quick": dict(size=4, n_mondrian=8, dummies_per_mondrian=3, preset="mlp-small", steps=200,
                         batch_size=8, lr=2e-3, samples=64, tol=0.2),
           "cpu": dict(size=8, n_mondrian=64, dummies_per_mondrian=3, preset="mlp-medium", steps=4000,
                       batch_size=64, lr=1e-3, samples=256, tol=0.2),
           "paper": dict(size=32, n_mondrian=2000, dummies_per_mondrian=3, preset="yoon-unet-128", steps=100000,
                         batch_size=256, lr=1e-4, samples=2000, tol=0.2)}, dummies),
    Claim(10, PAPER, "with a Mondrian majority and a Random Ink minority, the minority is memorized while the "
          "majority generalizes (H3)", "minority replicated, majority not (5k and 8k totals, 100 minority)",
          {"quick": dict(size=4, n_major=32, n_minor=4, preset="mlp-small", steps=300, batch_size=12, lr=2e-3,
                         samples=128),
           "cpu": dict(size=8, n_major=512, n_minor=16, preset="mlp-medium", steps=6000, batch_size=64, lr=1e-3,
                       samples=512),
           "paper": dict(size=32, n_major=5000, n_minor=100, preset="yoon-unet-128", steps=200000, batch_size=128,
                         lr=1e-4, samples=5000)}, minority),
]
