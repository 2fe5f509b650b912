"""Kaiser & Kollmann's claims 1-4: the optimal field localizes, the error-prone toy, the trained gap, trajectories.

Claim 1. Criterion (fixed before the run): the mean effective number of training points ``exp(H)`` of the
optimal denoiser of the 20-point circle's 10 training points, at noisy training and validation points,
has its interval inside [1, 1.5] at sigma 0.01 ((a) training, (b) validation points) and inside
[0.9 n, n] at sigma 100 ((c), (d)); all four are main. Positive control: the optimal denoiser of 10 points
10 apart on a line (one-hot at sigma 0.01, near-uniform at sigma 100). Negative control: the error-prone
denoiser with delta = 10, whose posterior never localizes.

Claim 2. Criterion: on the circle (unsquared L2 error, common noise), (a) the fitted gap peak
(:func:`compare.peaks.gap_peak`) of every setting lies strictly inside the grid, one grid step from each
end; (b) the largest delta's peak gap lies below the smallest delta's (intervals disjoint); (c) the
densest data's peak gap lies below the sparsest's and (d) its peak sigma too (intervals disjoint).

Claim 3. Criterion: for a trained network, (a) the fitted peak gap at the last checkpoint lies above
that at the last checkpoint whose samples are still mostly novel (replicate fraction's upper bound
< 0.5; intervals disjoint); (b) the last checkpoint's peak sigma lies inside the grid, one step from
each end; (c) at the novel checkpoint the gap is already positive (lower bound > 0). The novel
checkpoint is the last one before the final whose samples are mostly novel (else the first one).

Claim 4. Criterion: at the novel checkpoint of claim 3's network, at the sampling noise level nearest
the fitted gap peak, (a) the trajectories' states part from the noisy training data (one-sample KS of
their typicality percentiles, p < 0.01) and (b) read like noisy validation points (two-sample KS of
log-densities, p > 0.01): the states the network sees in inference are those of unseen data, not of
its training inputs.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from compare.bootstrap import mean_interval
from compare.errors import common_noise, point_errors
from compare.localization import localization
from compare.peaks import gap_peak
from compare.records import Records, summarize
from compare.trajectories import trajectory_distances, typicality_control
from memgen import edm_sigmas, sample
from memgen.data import circle, load
from memgen.noise import log_sigmas
from neural.config import toml_value
from toymodels import EmpiricalDenoiser, SmoothedDenoiser

from .base import Claim, Control, Outcome, new_figure, progress_bar, save_figure, seed_mean, envelope, fmt, fmt_interval
from .networks import checkpoint_models, gap_peak_of, read_metrics, trained
from .verdicts import Condition, below, interval_check, verdict

PAPER = "Kaiser & Kollmann"



def effective_number(model, ds, sigmas, *, n_draws: int = 50, seed: int = 0) -> Records:
    """``exp(H)`` of ``model``'s posterior over its training points, at noisy training and validation points
    ``y + sigma n`` of the data set ``ds`` (``n_draws`` fixed draws per point, from ``seed`` and ``seed + 1``);
    one row per (point, draw, sigma)."""
    rows = Records()
    for name, pts, s in (("train", ds.train, seed), ("validation", ds.val, seed + 1)):
        z = common_noise(pts.shape[0], pts.shape[1:], n_draws=n_draws, seed=s, dtype=torch.float64)
        x = pts.double().expand(n_draws, *pts.shape).reshape(-1, *pts.shape[1:])
        rows += localization(model, x, sigmas, noise=z.reshape(x.shape), dtype=torch.float64, progress=False,
                             tags={"points": name})
    return rows


def plot_effective_number(ax, rows: Records, n_train: int):
    """Median and quartiles of ``exp(H)`` vs sigma at noisy training and validation points."""
    for name, c in (("train", "crimson"), ("validation", "k")):
        summ = summarize(rows.where(points=name), "sigma", "effective_number")
        s = np.asarray([r["sigma"] for r in summ])
        ax.plot(s, [r["effective_number_q50"] for r in summ], color=c, label=f"noisy {name} points (median)")
        ax.fill_between(s, [r["effective_number_q25"] for r in summ], [r["effective_number_q75"] for r in summ],
                        color=c, alpha=0.2)
    ax.axhline(1, color="0.5", lw=0.7, ls="--")
    ax.axhline(n_train, color="0.5", lw=0.7, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("effective number of training points exp(H)")
    ax.legend(fontsize=7)


def _localizes(model_of, s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Claim 1's criterion (module doc) on ``model_of(ds)``, a denoiser with ``posterior`` built on the training
    points of the 20-point circle ``ds``."""
    ds = circle(20)
    n = ds.train.shape[0]
    model = model_of(ds)
    sig = log_sigmas(s["n_sigmas"], 0.01, 100.0)
    per_seed = [effective_number(model, ds, sig, n_draws=s["n_draws"], seed=seed)
                for seed in progress_bar(seeds, 1, progress)]
    nums, conditions = {}, []
    for where, sv in (("smallest", float(sig.min())), ("largest", float(sig.max()))):
        for pts in ("train", "validation"):
            vals = [rows.where(points=pts, sigma=sv).column("effective_number").astype(float) for rows in per_seed]
            nums[f"{pts}_{where}"] = seed_mean(vals, seed=seeds[0])
    for pts, name in (("train", "a"), ("validation", "b")):
        conditions.append(Condition(f"({name})", f"exp(H) at noisy {pts} points at sigma 0.01 is about 1",
                                    *nums[f"{pts}_smallest"], low=1.0, high=1.5))
    for pts, name in (("train", "c"), ("validation", "d")):
        conditions.append(Condition(f"({name})", f"exp(H) at noisy {pts} points at sigma 100 is about n = {n}",
                                    *nums[f"{pts}_largest"], low=0.9 * n, high=n))
    fig, ax = new_figure(figsize=(5, 3.5))
    plot_effective_number(ax, per_seed[0], n)
    save_figure(fig, out)
    small, large = nums["train_smallest"], nums["train_largest"]
    return Outcome(conditions, f"exp(H) {fmt(small[0])} at sigma 0.01, {fmt(large[0])} at sigma 100 (n = {n})",
                   "claim.png", {k: list(v) for k, v in nums.items()})


def localizes(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    return _localizes(lambda ds: EmpiricalDenoiser(ds.train, dtype=torch.float64), s, out, seeds, progress)


def localizes_positive(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Positive control: the optimal denoiser of the circle's training points moved 10 apart on a line, whose
    posterior is exactly one-hot at sigma 0.01 and (diameter 90 << 100) nearly uniform at sigma 100."""
    def model_of(ds):
        line = torch.zeros_like(ds.train, dtype=torch.float64)
        line[:, 0] = 10.0 * torch.arange(ds.train.shape[0]) - 45.0
        return EmpiricalDenoiser(line, dtype=torch.float64)
    return _localizes(model_of, s, out, seeds, progress)


def localizes_negative(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    """Negative control: the error-prone denoiser with delta = 10 (the circle's radius), whose posterior is that of
    noise sqrt(sigma^2 + 100) and so never localizes on one training point."""
    return _localizes(lambda ds: SmoothedDenoiser(ds.train, 10.0, dtype=torch.float64), s, out, seeds, progress)


def toy_gap(n_points: int, delta: float, sigmas, *, n_draws: int, seed: int = 0, n_boot: int = 300) -> dict:
    """Kaiser & Kollmann's toy: the generalization gap of the smoothed denoiser of the ``n_points`` circle
    (radius 10, alternately train and validation, :func:`memgen.data.circle`) with smoothing ``delta``.

    ``G(sigma) = (E_val - E_train) / E_train`` with the unsquared error ``E = mean_i ||D(y_i + sigma n_i) - y_i||``
    over the points and ``n_draws`` draws per point, the same draws at every sigma (training draws from
    ``seed``, validation draws from ``seed + 1``). Returns :func:`compare.peaks.gap_peak` (the peak fitted in
    log sigma, with bootstrap intervals over the points) and ``curve``, ``G`` on the grid ``sigmas``.
    """
    ds = circle(n_points)
    model = SmoothedDenoiser(ds.train, delta, dtype=torch.float64)
    kw = dict(n_draws=n_draws, squared=False, dtype=torch.float64, progress=False)
    et = point_errors(model, ds.train, sigmas, seed=seed, **kw)
    ev = point_errors(model, ds.val, sigmas, seed=seed + 1, **kw)
    out = gap_peak(et, ev, sigmas, n_boot=n_boot, seed=seed)
    out["curve"] = ((ev.mean(0) - et.mean(0)) / et.mean(0)).tolist()
    return out


def plot_toy_gaps(ax, sigmas, gaps: dict):
    """``gaps``: ``{label: {'curve', 'sigma_peak', 'sigma_peak_lo', 'sigma_peak_hi', 'gap_peak'}}`` (as
    :func:`toy_gap` gives); one gap curve per label, its fitted peak marked with the peak's interval."""
    s = np.asarray(sigmas, dtype=np.float64)
    for label, p in gaps.items():
        line, = ax.plot(s, p["curve"], label=f"{label}; peak at {p['sigma_peak']:.3g}")
        ax.errorbar([p["sigma_peak"]], [p["gap_peak"]], xerr=[[p["sigma_peak"] - p["sigma_peak_lo"]],
                    [p["sigma_peak_hi"] - p["sigma_peak"]]], color=line.get_color(), marker="o", ms=3, capsize=2)
    ax.axhline(0, color="0.5", lw=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("sigma")
    ax.set_ylabel("gap (E_val - E_train) / E_train")
    ax.legend(fontsize=7)


def errorprone(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    sig = log_sigmas(s["n_sigmas"], 0.05, 50.0)
    settings = [(20, d) for d in s["deltas"]] + [(n, 1.6) for n in s["densities"]]
    peaks, shown = {}, {}
    for key in progress_bar(dict.fromkeys(settings), 2, progress):
        per = [toy_gap(key[0], key[1], sig, n_draws=s["n_draws"], seed=seed) for seed in seeds]
        peaks[key] = {q: envelope([p[q] for p in per], [p[f"{q}_lo"] for p in per], [p[f"{q}_hi"] for p in per])
                      for q in ("sigma_peak", "gap_peak")}
        shown[f"n = {key[0]}, delta = {key[1]:g}"] = per[0]
    step = float(sig[1] / sig[0])
    inner = [interval_check(*p["sigma_peak"][1:], low=float(sig.min()) * step, high=float(sig.max()) / step,
                            strict=True) for p in peaks.values()]
    d_hi, d_lo = (20, max(s["deltas"])), (20, min(s["deltas"]))
    dense, sparse = (max(s["densities"]), 1.6), (min(s["densities"]), 1.6)
    scores = [min(inner), below(peaks[d_hi]["gap_peak"][2], peaks[d_lo]["gap_peak"][1]),
              below(peaks[dense]["gap_peak"][2], peaks[sparse]["gap_peak"][1]),
              below(peaks[dense]["sigma_peak"][2], peaks[sparse]["sigma_peak"][1])]
    fig, ax = new_figure(figsize=(6, 4))
    plot_toy_gaps(ax, sig, shown)                    # the first seed's curves and fitted peaks
    save_figure(fig, out)
    sp, dn = peaks[sparse]["sigma_peak"], peaks[dense]["sigma_peak"]
    return Outcome(f"peak sigma {fmt(sp[0])} (n={sparse[0]}) -> {fmt(dn[0])} (n={dense[0]}); peak gap "
                   f"{fmt(peaks[d_lo]['gap_peak'][0])} (delta {d_lo[1]:g}) -> {fmt(peaks[d_hi]['gap_peak'][0])} "
                   f"(delta {d_hi[1]:g})", f"{fmt_interval(*sp[1:])} -> {fmt_interval(*dn[1:])}",
                   verdict(scores), "claim.png",
                   {f"n={n}, delta={d}": {q: list(v) for q, v in p.items()} for (n, d), p in peaks.items()}
                   | {"scores": scores})


def network_overrides(s: dict) -> list:
    return [f"data.name={s['data']}", f"data.params={toml_value(s['data_params'])}", f"model.preset={s['preset']}",
            f"train.steps={s['steps']}", f"train.batch_size={s['batch_size']}", f"train.lr={s['lr']}",
            "train.first_checkpoint=10", "train.checkpoints_per_decade=4", f"train.save_every={s['steps']}",
            "measure.probes=32", "measure.sigmas=8", f"measure.samples={s['samples']}",
            f"measure.batch_size={s['samples']}", 'measure.metrics=["gap", "replicates", "sliced_wasserstein"]']


def _novel_and_last(run) -> tuple[int, int]:
    """Steps of the last checkpoint before the final one whose replicate fraction's upper bound is < 0.5
    (else the first checkpoint), and of the final one."""
    rows = read_metrics(run)
    novel = [r["step"] for r in rows[:-1] if r["replicate_fraction_hi"] < 0.5]
    return (novel[-1] if novel else rows[0]["step"]), rows[-1]["step"]


def _split(s: dict):
    data = load(s["data"], **s["data_params"])
    return data.train[:s["gap_points"]], data.val[:s["gap_points"]]


def trained_gap(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    sig = log_sigmas(s["n_sigmas"], 0.01, 20.0)
    train_pts, val_pts = _split(s)
    per = []
    for seed in progress_bar(seeds, 3, progress):
        run = trained(out.parent / "runs", network_overrides(s), seed)
        novel, last = _novel_and_last(run)
        models = dict(checkpoint_models(run))
        rows = {r["step"]: r for r in read_metrics(run)}
        per.append({"novel": novel, "last": last, "rf_novel": rows[novel]["replicate_fraction"],
                    "rf_last": rows[last]["replicate_fraction"],
                    "p_novel": gap_peak_of(models[novel], train_pts, val_pts, sig, seed=seed),
                    "p_last": gap_peak_of(models[last], train_pts, val_pts, sig, seed=seed)})
    q = {f"{w}_{k}": envelope([p[f"p_{w}"][k] for p in per], [p[f"p_{w}"][f"{k}_lo"] for p in per],
                              [p[f"p_{w}"][f"{k}_hi"] for p in per])
         for w in ("novel", "last") for k in ("gap_peak", "sigma_peak")}
    step = float(sig[1] / sig[0])
    scores = [below(q["novel_gap_peak"][2], q["last_gap_peak"][1]),
              interval_check(*q["last_sigma_peak"][1:], low=float(sig.min()) * step, high=float(sig.max()) / step,
                             strict=True),
              interval_check(*q["novel_gap_peak"][1:], low=1e-12, strict=True)]
    fig, ax = new_figure(figsize=(6, 4))
    for w, ls in (("novel", "--"), ("last", "-")):
        ax.plot(sig.numpy(), per[0][f"p_{w}"]["curve"], ls=ls,
                label=f"step {per[0][w]} (replicates {per[0]['rf_' + w]:.2f})")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xlabel("sigma")
    ax.set_ylabel("gap (E_val - E_train) / E_train")
    save_figure(fig, out)
    nums = {k: list(v) for k, v in q.items()} | {"seeds": [{k: v for k, v in p.items() if not k.startswith("p_")}
                                                          for p in per], "scores": scores}
    return Outcome(f"peak gap {fmt(q['novel_gap_peak'][0])} at the novel checkpoint -> {fmt(q['last_gap_peak'][0])}"
                   f" at the last (sigma {fmt(q['last_sigma_peak'][0])})",
                   f"{fmt_interval(*q['novel_gap_peak'][1:])} -> {fmt_interval(*q['last_gap_peak'][1:])}",
                   verdict(scores), "claim.png", nums)


def trajectories(s: dict, out: Path, seeds, progress: bool) -> Outcome:
    sig_gap = log_sigmas(s["n_sigmas"], 0.01, 20.0)
    train_pts, val_pts = _split(s)
    sigmas = edm_sigmas(s["sample_steps"])
    per = []
    for seed in progress_bar(seeds, 4, progress):
        run = trained(out.parent / "runs", network_overrides(s), seed)
        novel, _ = _novel_and_last(run)
        model = dict(checkpoint_models(run))[novel]
        peak = gap_peak_of(model, train_pts, val_pts, sig_gap, seed=seed)["sigma_peak"]
        noise = torch.randn(s["n_traj"], *train_pts.shape[1:], generator=torch.Generator().manual_seed(seed))
        _, traj = sample(model, noise, sigmas, return_trajectory=True)
        data = load(s["data"], **s["data_params"])
        ctrl = typicality_control(trajectory_distances(traj, data.train, val=data.val, n_reference=500, seed=seed,
                                                       progress=False))
        near = min(ctrl, key=lambda r: abs(math.log(r["sigma"] / peak)))
        per.append({"sigma_peak": peak, "sigma": near["sigma"], "ks_reference_pvalue": near["ks_reference_pvalue"],
                    "ks_val_pvalue": near["ks_val_pvalue"], "ks_reference": near["ks_reference"],
                    "ks_val": near["ks_val"], "control": list(ctrl)})
    parted = [1.0 if p["ks_reference_pvalue"] < 0.01 else 0.0 for p in per]
    like_val = [1.0 if p["ks_val_pvalue"] > 0.01 else 0.0 for p in per]
    scores = [float(np.mean(parted)) if np.mean(parted) in (0, 1) else 0.5,
              float(np.mean(like_val)) if np.mean(like_val) in (0, 1) else 0.5]
    fig, ax = new_figure(figsize=(6, 4))
    c = per[0]["control"]
    ax.plot([r["sigma"] for r in c], [r["ks_reference"] for r in c], label="states vs noisy training data (KS)")
    ax.plot([r["sigma"] for r in c], [r["val_ks_reference"] for r in c], "--", label="noisy validation vs noisy training")
    ax.plot([r["sigma"] for r in c], [r["ks_val"] for r in c], ":", label="states vs noisy validation (KS)")
    ax.axvline(per[0]["sigma_peak"], color="0.5", lw=0.8)
    ax.set_xlabel("sigma (gap peak: grey line)")
    save_figure(fig, out)
    ks_r = [p["ks_reference"] for p in per]
    ks_v = [p["ks_val"] for p in per]
    return Outcome(f"at sigma {fmt(per[0]['sigma'])}: KS to noisy training {fmt(np.mean(ks_r))}, to noisy validation"
                   f" {fmt(np.mean(ks_v))}", f"{fmt_interval(min(ks_r), max(ks_r))}; {fmt_interval(min(ks_v), max(ks_v))}",
                   verdict(scores), "claim.png",
                   {"seeds": [{k: v for k, v in p.items() if k != "control"} for p in per], "scores": scores})


_NET_QUICK = dict(data="gmm", data_params=dict(n=524, d=4, n_train=12), preset="mlp-small", steps=300,
                  batch_size=12, lr=2e-3, samples=64, gap_points=12, n_sigmas=13, sample_steps=18, n_traj=64)
_NET_CPU = dict(data="digits", data_params=dict(n=1064, n_train=64, seed=0), preset="mlp-medium", steps=6000,
                batch_size=64, lr=1e-3, samples=256, gap_points=64, n_sigmas=25, sample_steps=18, n_traj=128)
_NET_PAPER = dict(data="mondrian", data_params=dict(n=4000, size=32, n_train=2000), preset="yoon-unet-128",
                  steps=200000, batch_size=128, lr=2e-4, samples=1000, gap_points=1000, n_sigmas=41,
                  sample_steps=18, n_traj=256)

CLAIMS = [
    Claim(1, PAPER, "the optimal denoiser localizes: exp(H) goes from 1 (small sigma) to n (large sigma)",
          "exp(H) = 1 at small sigma, n at large sigma (20-point circle, n = 10)",
          {"quick": dict(n_sigmas=9, n_draws=10), "cpu": dict(n_sigmas=41, n_draws=50),
           "paper": dict(n_sigmas=41, n_draws=200)}, localizes,
          Control("the optimal denoiser of 10 points 10 apart on a line", localizes_positive),
          Control("the error-prone denoiser of the circle with delta = 10 (never localizes)", localizes_negative)),
    Claim(2, PAPER, "error-prone toy: the gap peaks at intermediate sigma; larger delta and denser data shrink it, "
          "denser data move the peak to smaller sigma", "peak at sigma ~ 1-2; shrinks with delta and density",
          {"quick": dict(n_sigmas=13, n_draws=30, deltas=(2.2, 1.2), densities=(16, 30)),
           "cpu": dict(n_sigmas=41, n_draws=500, deltas=(2.2, 1.8, 1.6, 1.2), densities=(16, 20, 30)),
           "paper": dict(n_sigmas=61, n_draws=2000, deltas=(2.2, 2.0, 1.8, 1.6, 1.4, 1.2),
                         densities=(16, 20, 24, 30))}, errorprone),
    Claim(3, PAPER, "a trained network's denoising gap grows with training and peaks at intermediate sigma, "
          "and exists while samples are still novel", "gap largest at sigma ~ 1-2, growing with training",
          {"quick": _NET_QUICK, "cpu": _NET_CPU, "paper": _NET_PAPER}, trained_gap),
    Claim(4, PAPER, "intermediate sampling states lie outside the noisy training data (like unseen data), so the "
          "training gap does not carry to inference", "qualitative (indirect in the paper)",
          {"quick": _NET_QUICK, "cpu": _NET_CPU, "paper": _NET_PAPER}, trajectories),
]
