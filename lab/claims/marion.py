"""Marion & Wu's claims 11-12: memorization onset against batch size and model size; train- vs test-referenced fidelity.

Both claims run on every data set of the scale's ``data_sets`` (at cpu scale: 8x8 Mondrian images, 64 for
training), each judged by the same conditions (one set per data set). The batch sweep (and claim 12) runs at the
data set's ``width`` (default ``width``); the width sweep at batch ``batch``; the run at (``batch``, ``width``) is
shared by both sweeps and by claim 12.

Claim 11. Criterion (fixed before the run): tau_mem is the first checkpoint where the replicate fraction reaches
0.1 (:func:`compare.timescales.tau_mem`, interpolated in log-step; runs that never reach it are censored: left out
of the fit and counted). The log-log slope of tau_mem against the batch size and against the width is fitted over
all seeds' runs, its interval the two-level bootstrap (seeds, then runs within a seed). (a) main, per data set:
the batch slope's interval lies inside [-1.2, -0.8] (onset in steps ∝ 1/B: a fixed number of images seen);
(b) secondary, per data set: the width slope's interval lies below -0.05 (larger models memorize sooner; a slope
within 0.05 of 0, under 4% per doubling, is no effect). Both intervals must be narrower than 1.0, the distance
between the two hypotheses of (a) (slope -1: images seen; slope 0: steps); a wider one is inconclusive.
Positive control: synthetic replicate-fraction curves (logistic in log-step, binomial noise of ``samples``
samples, a per-run log-normal jitter of 10%) whose onset is a fixed number of images seen, shortened by the square
root of the width, read on the same checkpoint grid. Negative control: the empirical denoiser of the training set
(:class:`toymodels.EmpiricalDenoiser`), whose replicate fraction, measured once per seed, is the same at every
step and every B: it memorizes at the first checkpoint, slope 0. Power: the cpu grid has 16 checkpoints per
decade, chosen from the positive control before any network was measured: with 8 (checkpoints 33% apart) its
batch slope over 3 seeds was -0.84 [-0.98, -0.68], inconclusive, with 16 it is -0.92 [-1.05, -0.80]. At quick
scale one seed of three runs cannot hold a slope to ±0.2 on any grid: the positive control is inconclusive there.

Claim 12. Criterion (fixed before the run): samples of each seed's run (at ``batch`` and the data set's width) at
a generalizing checkpoint (the last whose replicate fraction's upper bound is below 0.1: samples essentially novel,
as claim 3's novel checkpoint) and at a memorizing one
(the last checkpoint, if its interval lies above 0.5; else the claim is not run) are compared with the training
set and with size-matched held-out subsets (:mod:`compare.fidelity_gap`: Fréchet distances in ``features`` fixed
random ReLU features of the pixels, no downloaded weights; ``subsets`` disjoint held-out subsets of the training
set's size). The gap ``(D_val - D_train) / D_copy`` is in units of the gap of a generator that outputs the
training set (1) and is 0 in expectation for any generator that ignores the training set. (a) main, per data
set: the memorizing checkpoint's gap minus the generalizing one's (one statistic, from the same two-level
bootstrap replicates over seeds, samples, training points and held-out subsets) lies inside [-0.25, 0.25]: the
train/test-referenced gap moves by less than a quarter of what copying the training set moves it, so it does not
tell memorization from novelty. The margin was fixed from the question and the metric's noise at 64 reference
images (held-out images score gaps within about ±0.2 of 0), before any network was measured. Positive control:
two generators that ignore the training set (held-out images, and held-out images plus Gaussian noise of 0.3) as
the two checkpoints. Negative control: held-out images as the generalizing checkpoint, copies of the training set
(drawn uniformly with replacement) as the memorizing one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compare.fidelity_gap import held_out_subsets, random_relu_features, referenced_gaps
from compare.records import Records
from compare.replicates import replicates
from compare.timescales import tau_mem
from memgen import edm_sigmas, sample
from memgen.data import load
from neural import load_denoiser, read_metrics
from neural.checkpoint import checkpoint_steps
from toymodels import EmpiricalDenoiser

from .base import (Claim, Control, Outcome, fmt, fmt_interval, last_novel, loglog_fit, new_figure, progress_bar, regime,
                   save_figure)
from .networks import trained
from .verdicts import Condition

PAPER = "Marion & Wu"
ONSET = 0.1
"""tau_mem: the first step where the replicate fraction reaches this."""


def _overrides(s: dict, data: dict, batch: int, width: int) -> dict:
    """The config values (``{'section.key': value}``) of a network of ``width`` trained with ``batch`` on ``data``."""
    return {"data.name": data["name"], "data.params": data["params"], "model.preset": s["preset"],
            "model.params": {s["width_key"]: width}, "train.steps": s["steps"], "train.batch_size": batch,
            "train.lr": s["lr"], "train.first_checkpoint": 10, "train.checkpoints_per_decade": s["per_decade"],
            "train.save_every": s["steps"], "measure.metrics": ["replicates"],
            "measure.samples": s["samples"], "measure.batch_size": s["samples"]}


def _width(s: dict, data: dict) -> int:
    """The width of the batch sweep (and of claim 12) on ``data``: its own ``width``, else the scale's."""
    return data.get("width", s["width"])


def _sweeps(s: dict, data: dict) -> dict:
    """``{'batch': [(B, width)], 'width': [(batch, w)]}``: the runs of each sweep on ``data``."""
    return {"batch": [(b, _width(s, data)) for b in s["batches"]], "width": [(s["batch"], w) for w in s["widths"]]}


def _settings(s: dict, seeds) -> list:
    """``[(data, seed, (batch, width))]``: every run of both sweeps on every data set, each once."""
    return [(data, seed, bw) for data in s["data_sets"] for seed in seeds
            for bw in dict.fromkeys(sum(_sweeps(s, data).values(), []))]


def planned_runs(s: dict, seeds) -> list:
    """``[(values, seed)]`` of every network claims 11 and 12 train (:attr:`Claim.runs`)."""
    return [(_overrides(s, data, b, w), seed) for data, seed, (b, w) in _settings(s, seeds)]


def _run(s: dict, out: Path, data: dict, batch: int, width: int, seed: int) -> Path:
    return trained(out.parent / "runs", _overrides(s, data, batch, width), seed)


def _series(rows) -> tuple:
    """``(steps, fraction, fraction_lo, fraction_hi)`` arrays of a run's metrics rows."""
    return tuple(np.asarray([r[k] for r in rows], dtype=np.float64)
                 for k in ("step", "replicate_fraction", "replicate_fraction_lo", "replicate_fraction_hi"))


def _onsets(series_of, s: dict, out: Path, seeds, progress: bool, *, trained_runs: bool) -> Outcome:
    """Claim 11's criterion (module doc) on ``series_of(data, seed, batch, width)`` -> :func:`_series` of a run."""
    rows = Records()
    for data, seed, (b, w) in progress_bar(_settings(s, seeds), 11, progress):
        t, f, lo, hi = series_of(data, seed, b, w)
        rows.append({"data": data["name"], "seed": seed, "setting": f"batch {b}, width {w}", "batch": b, "width": w,
                     "step": float(t[-1]), "replicate_fraction": float(f[-1]),
                     "tau_mem": tau_mem(t, f, threshold=ONSET), "regime": regime(lo[-1], hi[-1])})
    conditions, fits, texts = [], {}, []
    fig, axes = new_figure(2, figsize=(9, 3.5))
    for data, marker in zip(s["data_sets"], "os^v"):
        name = data["name"]
        for ax, (kind, runs) in zip(axes, _sweeps(s, data).items()):
            sub = [r for r in rows if r["data"] == name and (r["batch"], r["width"]) in runs]
            tau = np.asarray([r["tau_mem"] for r in sub])
            fit = loglog_fit([r[kind] for r in sub], tau, seeds[0], clusters=[r["seed"] for r in sub])
            fit["censored"] = int(np.isinf(tau).sum())
            fits[f"{name}/{kind}"] = fit
            finite = [r for r in sub if np.isfinite(r["tau_mem"])]
            ax.plot([r[kind] for r in finite], [r["tau_mem"] for r in finite], marker, alpha=0.7,
                    label=f"{name} (slope {fmt(fit['slope'])}; censored {fit['censored']} of {len(sub)})")
        fb, fw = fits[f"{name}/batch"], fits[f"{name}/width"]
        conditions += [
            Condition(f"(a) {name}", "slope of log tau_mem against log batch (onset ∝ 1/B: slope -1)",
                      fb["slope"], fb["slope_boot_lo"], fb["slope_boot_hi"], low=-1.2, high=-0.8, max_width=1.0),
            Condition(f"(b) {name}", "slope of log tau_mem against log width (larger models sooner: below 0)",
                      fw["slope"], fw["slope_boot_lo"], fw["slope_boot_hi"], high=-0.05, max_width=1.0,
                      main=False)]
        texts.append(f"{name}: {fmt(fb['slope'])} vs log B, {fmt(fw['slope'])} vs log width (censored: "
                     f"{fb['censored']} batch, {fw['censored']} width runs)")
    for ax, kind in zip(axes, ("batch", "width")):
        if any(len(line.get_xdata()) for line in ax.lines):     # no run memorized: an empty panel
            ax.set_yscale("log")
            ax.set_xscale("log")
        ax.set_xlabel(kind)
        ax.set_ylabel(f"tau_mem (steps to {ONSET:g} replicates)")
    save_figure(fig, out, log_x=False)
    rows.to_csv(out / "onsets.csv")
    regimes = [{k: (float(r[k]) if k in ("step", "replicate_fraction", "tau_mem") else r[k])
                for k in ("data", "seed", "setting", "step", "replicate_fraction", "tau_mem", "regime")}
               for r in rows] if trained_runs else []
    return Outcome(conditions, "slope of log tau_mem: " + "; ".join(texts), "claim.png",
                   {"fits": fits, "runs": list(rows)}, regimes)


def onset(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _onsets(lambda data, seed, b, w: _series(read_metrics(_run(s, out, data, b, w, seed))),
                   s, out, seeds, progress, trained_runs=True)


def _grid(s: dict) -> np.ndarray:
    return np.asarray(checkpoint_steps(s["steps"], per_decade=s["per_decade"], first=10), dtype=np.float64)


def onset_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: replicate fractions ``Binomial(samples, 1 / (1 + (t0 / t)^4)) / samples`` on the checkpoint
    grid, with ``t0 = (steps / 4) (batch / B) sqrt(width / w)`` times a log-normal jitter of 10% per run: an onset
    at a fixed number of images seen, sooner for wider models."""
    def series_of(data, seed, b, w):
        rng = np.random.default_rng([seed, b, w])
        t = _grid(s)
        t0 = s["steps"] / 4 * s["batch"] / b * np.sqrt(_width(s, data) / w) * np.exp(0.1 * rng.standard_normal())
        f = rng.binomial(s["samples"], 1 / (1 + (t0 / t) ** 4)) / s["samples"]
        return t, f, f, f
    return _onsets(series_of, s, out, seeds, progress, trained_runs=False)


def _empirical_fraction(data: dict, seed: int, n: int) -> float:
    """Replicate fraction of ``n`` samples (seeded noise) of the empirical denoiser of ``data``'s training set."""
    ds = load(data["name"], **data["params"])
    noise = torch.randn(n, *ds.train.shape[1:], generator=torch.Generator().manual_seed(seed))
    x = sample(EmpiricalDenoiser(ds.train), noise, edm_sigmas(18))
    return float(replicates(x, ds.train, progress=False).summary[0]["replicate_fraction"])


def onset_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the empirical denoiser, the same model at every step and every B (its measured replicate
    fraction on every checkpoint of the grid)."""
    fractions = {}

    def series_of(data, seed, b, w):
        key = (data["name"], seed)
        if key not in fractions:
            fractions[key] = _empirical_fraction(data, seed, s["samples"])
        t = _grid(s)
        f = np.full(t.shape, fractions[key])
        return t, f, f, f
    return _onsets(series_of, s, out, seeds, progress, trained_runs=False)


def _checkpoints(rows) -> tuple:
    """Steps of the generalizing checkpoint (the last whose replicate fraction's upper bound is below
    :data:`NOVEL_MAX`: samples essentially novel) and of the memorizing one (the last checkpoint, if its interval
    lies above 0.5); None where there is none."""
    last = rows[-1]
    mem = last["step"] if regime(last["replicate_fraction_lo"], last["replicate_fraction_hi"]) == "memorizing" else None
    return last_novel(rows), mem


def _samples(run: Path, step: int, n: int, shape, seed: int) -> torch.Tensor:
    noise = torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))
    return sample(load_denoiser(run, step, ema=True, device="cpu"), noise, edm_sigmas(18)).float()


def _fidelity(arms_of, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 12's criterion (module doc) on ``arms_of(data, ds, pool, seed)`` -> ``(generalizing samples, memorizing
    samples, regime rows)`` or None when a checkpoint is missing; ``pool``: held-out indices outside the subsets."""
    conditions, numbers, texts, regimes = [], {}, [], []
    fig, ax = new_figure(figsize=(5.5, 3.5))
    for i, data in enumerate(s["data_sets"]):
        name, ds = data["name"], load(data["name"], **data["params"])
        phi = random_relu_features(int(np.prod(ds.train.shape[1:])), s["features"], seed=0)
        subsets = held_out_subsets(len(ds.val), len(ds.train), s["subsets"], seed=0)
        pool = np.setdiff1d(np.arange(len(ds.val)), np.concatenate(subsets))
        arms = [arms_of(data, ds, pool, seed) for seed in progress_bar(seeds, 12, progress)]
        regimes += [row for a in arms if a is not None for row in a[2]]
        if any(a is None for a in arms):
            conditions.append(Condition(f"(a) {name}", "gap at the memorizing minus at the generalizing checkpoint",
                                        np.nan, np.nan, np.nan, low=-0.25, high=0.25))
            texts.append(f"{name}: a seed has no generalizing or no memorizing checkpoint")
            continue
        r = referenced_gaps([[phi(a[0]), phi(a[1])] for a in arms], phi(ds.train),
                            [phi(ds.val[k]) for k in subsets], n_boot=s["n_boot"], seed=seeds[0])
        diff = [float(q[0]) for q in r["difference"]]
        conditions.append(Condition(f"(a) {name}", "gap at the memorizing minus at the generalizing checkpoint "
                                    "(units of a copier's gap)", *diff, low=-0.25, high=0.25))
        gaps = {arm: [float(q[j]) for q in r["gap"]] for j, arm in enumerate(("generalizing", "memorizing"))}
        numbers[name] = {"gap": gaps, "difference": diff}
        texts.append(f"{name}: gap {fmt(gaps['generalizing'][0])} (generalizing) -> {fmt(gaps['memorizing'][0])} "
                     f"(memorizing), difference {fmt(diff[0])} {fmt_interval(*diff[1:])}")
        for j, (arm, g) in enumerate(gaps.items()):          # the interval need not contain the estimate
            x = i + 0.15 * (2 * j - 1)
            ax.vlines(x, g[1], g[2], color=f"C{j}")
            ax.plot([x], [g[0]], "os"[j], color=f"C{j}", label=arm if i == 0 else None)
    ax.axhline(0, color="0.5", lw=0.7)
    ax.axhline(1, color="0.5", lw=0.7, ls="--")
    ax.set_xticks(range(len(s["data_sets"])), [d["name"] for d in s["data_sets"]])
    save_figure(fig, out, ylabel="(D_val - D_train) / D_copy (copies: 1)", log_x=False)
    return Outcome(conditions, "; ".join(texts), "claim.png", numbers, regimes)


def fidelity_gap(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    def arms_of(data, ds, pool, seed):
        run = _run(s, out, data, s["batch"], _width(s, data), seed)
        rows = {r["step"]: r for r in read_metrics(run)}
        steps = _checkpoints(list(rows.values()))
        if None in steps:
            return None
        regimes = [{"data": data["name"], "seed": seed, "setting": f"{arm} checkpoint", "step": float(step),
                    "replicate_fraction": float(rows[step]["replicate_fraction"]),
                    "regime": regime(rows[step]["replicate_fraction_lo"], rows[step]["replicate_fraction_hi"])}
                   for arm, step in zip(("generalizing", "memorizing"), steps)]
        x = [_samples(run, step, s["fid_samples"], ds.train.shape[1:], seed) for step in steps]
        return x[0], x[1], regimes
    return _fidelity(arms_of, s, out, seeds, progress)


def _held_out(ds, pool, n: int, seed: int) -> torch.Tensor:
    """``n`` held-out images drawn without replacement from ``pool`` (with replacement if the pool is smaller)."""
    rng = np.random.default_rng(seed)
    return ds.val[rng.choice(pool, n, replace=n > len(pool))]


def fidelity_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: held-out images (generalizing) and held-out images plus Gaussian noise of 0.3
    (memorizing), two generators that ignore the training set."""
    def arms_of(data, ds, pool, seed):
        noise = 0.3 * torch.randn(s["fid_samples"], *ds.train.shape[1:], generator=torch.Generator().manual_seed(seed))
        return (_held_out(ds, pool, s["fid_samples"], seed),
                _held_out(ds, pool, s["fid_samples"], seed + 10_000) + noise, [])
    return _fidelity(arms_of, s, out, seeds, progress)


def fidelity_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: held-out images (generalizing) and copies of training images drawn uniformly with
    replacement (memorizing)."""
    def arms_of(data, ds, pool, seed):
        copies = np.random.default_rng(seed + 10_000).integers(0, len(ds.train), s["fid_samples"])
        return _held_out(ds, pool, s["fid_samples"], seed), ds.train[copies], []
    return _fidelity(arms_of, s, out, seeds, progress)


_QUICK = dict(data_sets=(dict(name="mondrian", params=dict(size=8, n=1064, n_train=64)),), preset="mlp-small",
              width_key="width", width=128, batch=8, batches=(2, 4, 8), widths=(32, 128, 512), steps=200, lr=2e-3,
              samples=64, per_decade=8, features=32, subsets=8, fid_samples=128, n_boot=200)
_CPU = dict(data_sets=(dict(name="mondrian", params=dict(size=8, n=1064, n_train=64), width=256),),
            preset="mlp-small", width_key="width", width=256, batch=64, batches=(32, 64, 128),
            widths=(128, 256, 512), steps=2000, lr=1e-3, samples=128, per_decade=16, features=32, subsets=8,
            fid_samples=256, n_boot=1000)
_PAPER = dict(data_sets=(dict(name="cifar10", params=dict(n_train=2048)),), preset="marion-93m",
              width_key="base_channels", width=128, batch=128, batches=(16, 32, 64, 128), widths=(32, 64, 128, 192),
              steps=400000, lr=1e-4, samples=5120, per_decade=8, features=64, subsets=8, fid_samples=2048,
              n_boot=1000)

CLAIMS = [
    Claim(11, PAPER, "memorization onset in steps ∝ 1/B (a fixed number of images seen), and larger models "
          "memorize sooner", "onset ∝ 1/B; larger models memorize sooner",
          {"quick": _QUICK, "cpu": _CPU, "paper": _PAPER}, onset,
          Control("synthetic replicate fractions with onset at a fixed number of images seen, sooner for wider "
                  "models", onset_positive),
          Control("the empirical denoiser (memorizes at the first checkpoint for every B and width)", onset_negative),
          planned_runs),
    Claim(12, PAPER, "train- and test-referenced fidelity are nearly identical through training (that gap says "
          "nothing about novelty)", "nearly identical curves", {"quick": _QUICK, "cpu": _CPU, "paper": _PAPER},
          fidelity_gap,
          Control("held-out images and noisy held-out images as the two checkpoints (both ignore the training set)",
                  fidelity_positive),
          Control("held-out images, then copies of the training set, as the two checkpoints", fidelity_negative),
          planned_runs),
]
