"""The audit of one model (``memgen audit``): is it memorizing, and where? One run, one folder of CSV, figures and a report.

For a model ``D`` with training points ``y_1..y_n`` and validation points (docs/metrics.md has the pitfalls):

* ``gap.csv``: the per-sigma training and validation denoising errors ``E(sigma) = mean ||D(y + sigma eps, sigma)
  - y||^2 / d``, the absolute gap ``E_val - E_train`` (``abs_gap``, the report's headline) and the relative gap
  ``G = (E_val - E_train) / E_train`` (:func:`compare.generalization_gap`; meaningless where ``E_train`` is ~0) of
  the model and of the optimal (empirical) denoiser ``D*`` of the same training set, on the same probes and noise;
* ``optimal_distance.csv``: the model's distance to the optimal denoiser, ``||D(x, sigma) - D*(x, sigma)|| /
  sqrt(d)`` at noisy training and validation probes, per sigma (:func:`compare.localization`);
* ``trajectories.csv``: for sampling trajectories (Heun on the EDM grid from fixed noise), the distance of each
  state to the nearest training point and to the nearest validation point in units of ``sigma sqrt(d)``, and
  its typicality under the noisy training data (:func:`compare.trajectory_distances`; with a validation
  control where that function offers one);
* ``replicates.csv``, ``replicates_per_sample.csv``, ``gallery.png``: the ratio criterion ``d1 / d2 < 1/3``
  (:func:`compare.replicates`) and Marion & Wu's cosine score (best cosine similarity above 0.6,
  :func:`compare.cosine_memorization`) in the chosen feature space, and the samples closest to a training image;
* ``fidelity.csv``: sliced Wasserstein and Fréchet distances of the samples to the training and validation sets
  in the feature space (reference sets subsampled to ``fidelity_points``), and the Inception FID when the
  FID weights file is given;
* ``samples.npy`` (the samples), ``audit.png``, ``report.md``, ``summary.json``, ``record.json``.

The noise levels (probes: ``[sigma_min, sigma_max]``; sampling: ``[sample_sigma_min, sigma_max]``) are clipped to
the model's ``sigma_range`` where it has one (a discrete VP schedule: ``[sigma_0, sigma_{T-1}]``, about
[0.01, 157] for DDPM), so that the model is never asked below or above the noise it was trained on.

Memory stays bounded for large training sets: the optimal denoiser, the nearest search and the trajectory
distances stream over training chunks; the errors use ``probes`` points per split. The model computes on
its own device (the optimal denoiser and the replicate search follow it); trajectory distances run on the CPU.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from memgen.progress import progress_bar

from memgen.checks import in_interval, integer, positive
from memgen.contract import model_device

from .inputs import AuditData


COUNTS = {"probes": 1, "sigmas": 1, "samples": 1, "trajectories": 1, "steps": 1, "n_reference": 1,
          "fidelity_points": 2, "n_boot": 1, "batch_size": 1, "gallery": 0, "seed": 0}
"""The integer settings and their smallest allowed value."""


def check_setting(field: str, value, name: str | None = None):
    """``value`` of the setting ``field`` if allowed (:data:`COUNTS`, positive noise levels, thresholds in
    (0, 1]); else a ValueError naming it ``name`` (default: the field; ``--probes`` on the command line)."""
    name = name or field
    if field in COUNTS:
        return integer(value, name, COUNTS[field])
    if field in ("sigma_min", "sigma_max", "sample_sigma_min"):
        return positive(value, name)
    if field in ("threshold", "cosine_threshold"):
        return in_interval(value, name, 0.0, 1.0, closed="right")
    return value


@dataclass
class AuditSettings:
    """Sizes of the audit. ``features``: ``'pixels'``, ``'inception_v3'``/``'resnet50'`` (with
    ``feature_weights``, a local file) or ``module:callable``; ``fid_weights``: the FID Inception weights.
    Every count is checked (:func:`check_setting`); noise levels are clipped to the model's (module docstring)."""

    probes: int = 128
    sigmas: int = 12
    sigma_min: float = 0.01
    sigma_max: float = 80.0
    sample_sigma_min: float = 0.002
    samples: int = 256
    trajectories: int = 64
    steps: int = 18
    sampler: str = "heun"
    n_reference: int = 500
    threshold: float = 1 / 3
    cosine_threshold: float = 0.6
    features: str = "pixels"
    feature_weights: str | None = None
    fid_weights: str | None = None
    fidelity_points: int = 5000
    n_boot: int = 500
    batch_size: int = 256
    gallery: int = 8
    seed: int = 0

    def __post_init__(self):
        for field in fields(self):
            setattr(self, field.name, check_setting(field.name, getattr(self, field.name)))
        if self.sigma_min > self.sigma_max or self.sample_sigma_min > self.sigma_max:
            raise ValueError(f"sigma_min, sample_sigma_min: must not exceed sigma_max ({self.sigma_max}), got "
                             f"{self.sigma_min} and {self.sample_sigma_min}")


def sigma_window(model, lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` clipped to the model's ``sigma_range`` (if it has one); an empty window is refused."""
    m_lo, m_hi = getattr(model, "sigma_range", (0.0, math.inf))
    lo, hi = max(lo, m_lo), min(hi, m_hi)
    if lo > hi:
        raise ValueError(f"sigma_min, sigma_max: the audit's noise levels miss the model's range "
                         f"[{m_lo:.3g}, {m_hi:.3g}]")
    return lo, hi


def _probes(model, data: AuditData, s: AuditSettings):
    """Fixed probes, noise, sampling noise and labels (:func:`neural.measure.make_probes`) of the audit's split."""
    from memgen.data import Dataset, first_split
    from neural.measure import make_probes

    conditional = getattr(model, "num_classes", None) is not None
    labels = None
    if conditional:
        if data.train_labels is None or data.val_labels is None:
            raise ValueError("train: the model is class-conditional; the training and validation data need labels")
        labels = torch.cat([data.train_labels, data.val_labels])
    n = len(data.train)
    ds = Dataset("audit", torch.cat([data.train, data.val]), first_split(n + len(data.val), n), labels=labels)
    lo, hi = sigma_window(model, s.sigma_min, s.sigma_max)
    return make_probes(ds, probes=s.probes, sigmas=s.sigmas, sigma_min=lo, sigma_max=hi,
                       samples=s.samples, seed=s.seed, conditional=conditional)


def _sample(model, probes, s: AuditSettings, progress: bool):
    """Samples ``[N, *shape]`` (CPU) and the trajectories of the first ``s.trajectories`` of them."""
    from memgen.noise import edm_sigmas
    from memgen.samplers import Trajectory, sample

    device = model_device(model)
    sigmas = edm_sigmas(s.steps, *sigma_window(model, s.sample_sigma_min, s.sigma_max))
    noise, labels = probes.sample_noise, probes.sample_labels
    outs, states, dens = [], [], []
    for k, b0 in enumerate(progress_bar(range(0, len(noise), s.batch_size), enabled=progress, desc="sampling",
                                        leave=False)):
        den = model if labels is None else model.with_labels(labels[b0:b0 + s.batch_size].to(device))
        g = torch.Generator(device).manual_seed(s.seed + k)
        x, traj = sample(den, noise[b0:b0 + s.batch_size].to(device), sigmas, method=s.sampler, generator=g,
                         return_trajectory=True)
        outs.append(x.cpu())
        keep = max(0, min(s.trajectories - b0, len(x)))
        if keep:
            states.append(traj.x[:, :keep].cpu())
            dens.append(traj.denoised[:, :keep].cpu())
    return torch.cat(outs), Trajectory(torch.cat(states, 1), sigmas, torch.cat(dens, 1))


def _trajectory_rows(traj, data: AuditData, s: AuditSettings, progress: bool):
    """Trajectory distances to the training set (with noisy validation points as the control) and to the
    validation set; and the control per sigma (:func:`compare.typicality_control`)."""
    from compare import trajectory_distances, typicality_control

    kw = dict(n_reference=s.n_reference, seed=s.seed, progress=progress)
    rows = trajectory_distances(traj, data.train, val=data.val, tags={"reference": "train"}, **kw)
    control = typicality_control(rows)
    return rows + trajectory_distances(traj, data.val, tags={"reference": "val"}, **kw), control


def _subset(x: torch.Tensor, m: int, seed: int) -> torch.Tensor:
    if len(x) <= m:
        return x
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:m]]


def _fidelity(samples, data: AuditData, phi, s: AuditSettings, device):
    from compare import Records, frechet_distance, inception_fid, sliced_wasserstein

    rows = Records()
    for name, ref in (("train", data.train), ("val", data.val)):
        ref = _subset(ref, s.fidelity_points, s.seed)
        rows.append({"reference": name, "metric": "sliced_wasserstein", "features": s.features,
                     "value": sliced_wasserstein(samples, ref, features=phi, seed=s.seed)})
        rows.append({"reference": name, "metric": "frechet_distance", "features": s.features,
                     "value": frechet_distance(samples, ref, features=phi)})
        if s.fid_weights:
            rows.append({"reference": name, "metric": "fid", "features": "fid_inception",
                         "value": inception_fid(samples, ref, s.fid_weights, device=device)})
    return rows


def _is_image(shape) -> bool:
    return len(shape) == 3 and shape[0] in (1, 3)


def audit(model, data: AuditData, out, *, settings: AuditSettings | None = None, progress: bool = True,
          model_name: str = "model") -> dict:
    """Audit ``model`` against ``data`` into the folder ``out`` (files in the module docstring); returns the summary."""
    from compare import (ReplicateResult, Records, cosine_memorization, generalization_gap, localization,
                         replicates, summarize)
    from compare.features import feature_map, pixels
    from compare.fid import check_fid
    from memgen.run_files import atomic_write_json, atomic_write_text, write_record
    from toymodels import EmpiricalDenoiser

    s = settings or AuditSettings()
    if len(data.train) < 2:
        raise ValueError(f"train: need at least 2 training points, got {len(data.train)}")
    if len(data.val) < 2:
        raise ValueError(f"val: need at least 2 validation points, got {len(data.val)}; pass --val DATA")
    if s.fid_weights:
        check_fid(s.fid_weights, tuple(data.train.shape[1:]), name="fid_weights (--fid-weights)")
    device = model_device(model)
    phi = feature_map(s.features if ":" not in s.features else _callable(s.features), weights=s.feature_weights,
                      device=device, batch_size=s.batch_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = math.prod(data.train.shape[1:])
    stages = progress_bar(total=6, enabled=progress, desc="audit")
    probes = _probes(model, data, s)
    optimal = EmpiricalDenoiser(data.train).to(device)
    kw = dict(train_noise=probes.train_noise, val_noise=probes.val_noise, n_boot=s.n_boot, seed=s.seed,
              batch_size=s.batch_size, progress=progress)
    labels = dict(train_labels=probes.train_probe_labels, val_labels=probes.val_probe_labels)

    stages.set_postfix_str("generalization gap")
    gap = (generalization_gap(model, probes.train, probes.val, probes.sigmas, tags={"model": model_name}, **labels,
                              **kw)
           + generalization_gap(optimal, probes.train, probes.val, probes.sigmas, tags={"model": "optimal"}, **kw))
    gap.to_csv(out / "gap.csv")
    stages.update()

    stages.set_postfix_str("distance to the optimal denoiser")
    loc = Records()
    for split, pts, z in (("train", probes.train, probes.train_noise), ("val", probes.val, probes.val_noise)):
        # a class-conditional model sees each probe's own class: the split goes through in one batch
        split_labels = labels[f"{split}_labels"]
        den = model if split_labels is None else model.with_labels(split_labels.to(device))
        loc += localization(den, pts, probes.sigmas, noise=z, reference=optimal,
                            batch_size=s.batch_size if split_labels is None else len(pts),
                            tags={"split": split}, progress=progress)
    for row in loc:
        row["rms_distance"] = row["reference_distance"] / math.sqrt(d)
    dist = summarize(loc, ["split", "sigma"], ["rms_distance"])
    dist.to_csv(out / "optimal_distance.csv")
    stages.update()

    stages.set_postfix_str("sampling")
    samples, traj = _sample(model, probes, s, progress)
    np.save(out / "samples.npy", samples.numpy())
    stages.update()

    stages.set_postfix_str("trajectories")
    trows, control = _trajectory_rows(traj, data, s, progress)
    control.to_csv(out / "typicality_control.csv")
    by = ["reference"] + (["source"] if "source" in trows.columns() else []) + ["step", "sigma"]
    tsum = summarize(trows, by, ["normalized_distance", "typicality"])
    tsum.to_csv(out / "trajectories.csv")
    stages.update()

    stages.set_postfix_str("replicates")
    search_phi = None if phi is pixels else phi
    train_dev, samples_dev = data.train.to(device), samples.to(device)      # the nearest search runs where the model does
    rep = replicates(samples_dev, train_dev, threshold=s.threshold, feature_map=search_phi,
                     train_labels=data.train_labels if probes.sample_labels is not None else None,
                     sample_labels=probes.sample_labels, n_boot=s.n_boot, seed=s.seed, progress=progress)
    cos = cosine_memorization(samples_dev, train_dev, feature_map=search_phi, threshold=s.cosine_threshold,
                              n_boot=s.n_boot, seed=s.seed, progress=progress)
    rep.summary.to_csv(out / "replicates.csv")
    per_sample = Records({**r, "best_cosine": float(cos.best[i]), "cosine_nearest": int(cos.nearest[i])}
                         for i, r in enumerate(rep.per_sample))
    per_sample.to_csv(out / "replicates_per_sample.csv")
    if _is_image(data.train.shape[1:]) and s.gallery:
        from figures.replicate_gallery import replicate_gallery

        closest = np.argsort(rep.per_sample.column("ratio").astype(float), kind="stable")[:s.gallery]
        sub = ReplicateResult(rep.summary, Records(rep.per_sample[int(i)] for i in closest), rep.neighbours)
        replicate_gallery(out / "gallery.png", samples[torch.as_tensor(closest)], data.train, sub,
                          title=f"{model_name}: the {len(closest)} samples closest to a training image (smallest d1/d2)")
    stages.update()

    stages.set_postfix_str("fidelity")
    fid = _fidelity(samples, data, phi, s, device)
    fid.to_csv(out / "fidelity.csv")
    stages.update()
    stages.close()

    summary = _summary(gap, dist, tsum, control, rep, cos, fid, model_name, s, data)
    atomic_write_json(out / "summary.json", summary)
    write_record(out, command="audit", settings=asdict(s), data=data.description, model=model_name)
    from figures.memorization_panels import audit_figure

    audit_figure(out / "audit.png", gap, dist, tsum, per_sample, model_name, s)
    atomic_write_text(out / "report.md", _report(summary, out))
    return summary


def _callable(spec: str):
    from .inputs import resolve

    return resolve(spec, "features")


def _at_smallest_sigma(rows, column, **equal):
    sel = [r for r in rows if all(r.get(k) == v for k, v in equal.items())]
    return min(sel, key=lambda r: r["sigma"])[column]


def _summary(gap, dist, tsum, control, rep, cos, fid, name, s: AuditSettings, data: AuditData) -> dict:
    from compare import parting_sigma

    all_rows = rep.summary[0]
    last = {}
    for ref in ("train", "val"):
        sel = [r for r in tsum if r["reference"] == ref and r.get("source", "trajectory") == "trajectory"]
        last[ref] = min(sel, key=lambda r: r["sigma"])
    return {
        "model": name, "n_train": len(data.train), "n_val": len(data.val), "samples": s.samples,
        "sigma_smallest": float(min(r["sigma"] for r in gap)),
        "abs_gap_model_at_smallest_sigma": _at_smallest_sigma(gap, "abs_gap", model=name),
        "abs_gap_optimal_at_smallest_sigma": _at_smallest_sigma(gap, "abs_gap", model="optimal"),
        "abs_gap_model_max": float(np.nanmax([r["abs_gap"] for r in gap if r["model"] == name])),
        "gap_model_at_smallest_sigma": _at_smallest_sigma(gap, "gap", model=name),
        "gap_optimal_at_smallest_sigma": _at_smallest_sigma(gap, "gap", model="optimal"),
        "gap_model_max": float(np.nanmax([r["gap"] for r in gap if r["model"] == name])),
        "optimal_distance_train_at_smallest_sigma": _at_smallest_sigma(dist, "rms_distance_mean", split="train"),
        "optimal_distance_val_at_smallest_sigma": _at_smallest_sigma(dist, "rms_distance_mean", split="val"),
        "trajectory_sigma_last": last["train"]["sigma"],
        "trajectory_distance_train_median": last["train"]["normalized_distance_q50"],
        "trajectory_distance_val_median": last["val"]["normalized_distance_q50"],
        "trajectory_typicality_median": last["train"]["typicality_q50"],
        "parting_sigma_model": parting_sigma(control), "parting_sigma_validation": parting_sigma(control, source="validation"),
        "replicate_fraction": all_rows["replicate_fraction"],
        "replicate_fraction_lo": all_rows["replicate_fraction_lo"],
        "replicate_fraction_hi": all_rows["replicate_fraction_hi"],
        "train_replicated": all_rows["train_replicated"], "ratio_threshold": s.threshold,
        "cosine_score": cos.score, "cosine_score_lo": cos.lo, "cosine_score_hi": cos.hi,
        "cosine_threshold": s.cosine_threshold, "features": s.features,
        **{f"{r['metric']}_{r['reference']}": r["value"] for r in fid},
    }


def _sigma_text(sigma) -> str:
    return "never" if sigma is None else f"{sigma:.3g}"


def _report(summary: dict, out: Path) -> str:
    """The markdown report: the numbers, the files, and how to read them."""
    g = summary
    lines = [
        f"# Audit of {g['model']}", "",
        f"{g['n_train']} training points, {g['n_val']} validation points, {g['samples']} samples; features: "
        f"{g['features']}. Reading guide: docs/metrics.md (in the memgen repository).", "",
        "![audit](audit.png)", "",
        "| measure | value |", "|---|---|",
        f"| generalization gap E_val - E_train (error per dimension) at sigma = {g['sigma_smallest']:.3g}: model | "
        f"{g['abs_gap_model_at_smallest_sigma']:.3g} |",
        f"| same for the optimal (fully memorizing) denoiser | {g['abs_gap_optimal_at_smallest_sigma']:.3g} |",
        f"| largest gap E_val - E_train of the model over sigma | {g['abs_gap_model_max']:.3g} |",
        f"| relative gap (E_val - E_train)/E_train at sigma = {g['sigma_smallest']:.3g}: model / optimal denoiser "
        f"(huge and meaningless where E_train is ~0) | {g['gap_model_at_smallest_sigma']:.3g} / "
        f"{g['gap_optimal_at_smallest_sigma']:.3g} |",
        f"| RMS distance to the optimal denoiser at the smallest sigma: train / val probes | "
        f"{g['optimal_distance_train_at_smallest_sigma']:.3g} / {g['optimal_distance_val_at_smallest_sigma']:.3g} |",
        f"| trajectories at sigma = {g['trajectory_sigma_last']:.3g}: median distance to nearest train / val point "
        f"(units of sigma sqrt(d)) | {g['trajectory_distance_train_median']:.3g} / "
        f"{g['trajectory_distance_val_median']:.3g} |",
        f"| median typicality under the noisy training data (percentile) | {g['trajectory_typicality_median']:.3g} |",
        f"| largest sigma where the states part from the noisy training data: model / noisy validation points "
        f"(KS p < 0.01; typicality_control.csv) | {_sigma_text(g['parting_sigma_model'])} / "
        f"{_sigma_text(g['parting_sigma_validation'])} |",
        f"| replicate fraction (d1/d2 < {g['ratio_threshold']:.3g}) | {g['replicate_fraction']:.3f} "
        f"[{g['replicate_fraction_lo']:.3f}, {g['replicate_fraction_hi']:.3f}] |",
        f"| training points replicated at least once | {g['train_replicated']} |",
        f"| memorization score (best cosine > {g['cosine_threshold']:.3g}) | {g['cosine_score']:.3f} "
        f"[{g['cosine_score_lo']:.3f}, {g['cosine_score_hi']:.3f}] |",
    ]
    for key in sorted(k for k in g if k.split("_")[0] in ("sliced", "frechet", "fid")):
        lines.append(f"| {key.replace('_', ' ')} | {g[key]:.4g} |")
    lines += ["", "How to read it:", "",
              "* A memorizing model behaves like the optimal denoiser: its gap grows like the optimal one's at small "
              "sigma, its distance to the optimal denoiser is small on training probes, its samples end on training "
              "points (replicates, cosine score near 1, trajectory distance to the nearest training point far below "
              "the distance to the nearest validation point).",
              "* A generalizing model has a gap near 0, stays away from the optimal denoiser at small sigma, and its "
              "samples are as close to validation points as to training points.",
              "* Typicality alone cannot tell the two apart at small sigma (every new point is atypical of the noisy "
              "training data there); compare it with the validation control: noisy validation points part from "
              "the noisy training data too, and a model whose states part where they do behaves like unseen data. "
              "The replicate search takes the second-nearest over distinct training points, so duplicated "
              "training images are counted.", "",
              "Files: gap.csv, optimal_distance.csv, trajectories.csv, typicality_control.csv, replicates.csv, "
              "replicates_per_sample.csv, "
              "fidelity.csv, summary.json, record.json" + (", gallery.png" if (out / "gallery.png").exists() else "")
              + "."]
    return "\n".join(lines) + "\n"
