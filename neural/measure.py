"""Measurement of a model at a checkpoint, on FIXED probes with FIXED noise, as one flat JSON row.

A :class:`Measurement` holds the probe sets and two kinds of metric callables:

* model metrics ``metric(model, probes) -> dict`` (e.g. the per-sigma train/validation denoising error);
* sample metrics ``metric(samples, probes) -> dict``, evaluated on ``N`` fresh samples drawn from fixed
  noise (the same noise at every checkpoint) with :func:`memgen.sample` on an EDM grid.

Their dicts are merged into one row. Any callables can be passed; :meth:`Measurement.from_config`
builds the standard ones from the functions that ``[measure]`` names as ``'module:function'`` (the
metrics of ``compare``, resolved by name when a measurement is built), each called with a fixed
convention:

* ``error``: ``fn(model, train, val, sigmas, train_noise=..., val_noise=..., progress=False)`` -> rows
  with one row per sigma; every numeric column becomes a per-sigma list (``sigma``, ``e_train``,
  ``e_val``, ``gap``, ...; the gap of Kaiser & Kollmann is ``(E_val - E_train) / E_train``).
* ``replicates``: ``fn(samples, train_set, train_labels=..., sample_labels=..., progress=False)`` -> a
  result whose ``summary`` rows (first row: all samples) give the columns (``replicate_fraction``, ...)
  and ``replicates_by_group``.
* ``fidelity``: ``fn(samples)`` (one argument) or ``fn(samples, reference)`` for reference in
  (training set, validation set) -> a number or per-sample numbers (averaged), recorded as
  ``<function>`` or ``<function>_train`` / ``<function>_val``. ``'auto'`` picks by data set: Mondrian
  validity for Mondrian images, the sliced Wasserstein distance to held-out (validation) data for data
  with a Gaussian (mixture) truth (the likelihood under the known mixture rewards samples collapsed onto
  its modes), otherwise the sliced Wasserstein distance to the training and validation sets.
"""
from __future__ import annotations

import importlib
import inspect
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import memgen.data
from memgen.contract import Denoiser
from memgen.noise import edm_sigmas, log_sigmas
from memgen.samplers import sample
from memgen.threads import cpu_threads

from . import checkpoint as ckpt
from .config import apply_overrides, load_config


@dataclass
class Probes:
    """Fixed inputs of every measurement of a run.

    ``train``/``val``: probe points ``[m, *shape]`` with their fixed standard-normal ``train_noise``/``val_noise``
    (one draw per point, shared by all sigmas and checkpoints); ``sigmas``: float64 noise levels;
    ``train_set``/``val_set``: the whole training and validation sets (references of sample metrics),
    ``train_labels``: labels of ``train_set``; ``sample_noise`` ``[N, *shape]`` and ``sample_labels`` ``[N]``:
    the fixed starting noise (and classes) of the samples; ``truth``: the data set's known distribution;
    ``probe_labels``: for class-conditional models, the labels of ``train`` then ``val`` (else None).
    """

    train: torch.Tensor
    val: torch.Tensor
    train_noise: torch.Tensor
    val_noise: torch.Tensor
    sigmas: torch.Tensor
    train_set: torch.Tensor
    val_set: torch.Tensor
    train_labels: torch.Tensor | None
    sample_noise: torch.Tensor
    sample_labels: torch.Tensor | None
    truth: dict | None = None
    probe_labels: torch.Tensor | None = None


def make_probes(dataset, train_index=None, *, probes: int = 64, sigmas: int = 16, sigma_min: float = 0.002,
                sigma_max: float = 80.0, samples: int = 256, seed: int = 0, conditional: bool = False) -> Probes:
    """Probes of ``dataset``: ``probes`` random training points (from ``train_index``, default the split's
    training indices) and as many validation points, each with one fixed noise draw; ``sigmas``
    log-spaced levels; ``samples`` fixed sampling noises (with labels drawn from the training labels
    when ``conditional``). Everything is drawn from ``torch.Generator().manual_seed(seed)``, the probes
    and their noise first, so that they do not depend on the number of samples.
    """
    g = torch.Generator().manual_seed(int(seed))
    train_index = torch.as_tensor(dataset.split.train if train_index is None else train_index)
    val_index = torch.as_tensor(dataset.split.val)
    train_set, val_set = dataset.x[train_index], dataset.x[val_index]
    pick_t = torch.randperm(len(train_index), generator=g)[:probes]
    pick_v = torch.randperm(len(val_index), generator=g)[:probes]
    train, val = train_set[pick_t], val_set[pick_v]
    train_noise, val_noise = torch.randn(train.shape, generator=g), torch.randn(val.shape, generator=g)
    train_labels = None if dataset.labels is None else dataset.labels[train_index]
    sample_noise = torch.randn((int(samples), *dataset.shape), generator=g)
    sample_labels = probe_labels = None
    if conditional:
        sample_labels = train_labels[torch.randint(len(train_labels), (int(samples),), generator=g)]
        probe_labels = torch.cat([train_labels[pick_t], dataset.labels[val_index][pick_v]])
    return Probes(train=train, val=val, train_noise=train_noise, val_noise=val_noise,
                  sigmas=log_sigmas(int(sigmas), sigma_min, sigma_max), train_set=train_set, val_set=val_set,
                  train_labels=train_labels, sample_noise=sample_noise, sample_labels=sample_labels,
                  truth=dataset.truth, probe_labels=probe_labels)


def resolve(spec: str, key: str = "spec"):
    """The object named ``'module:attribute'`` (``attribute`` may be dotted), imported on demand."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"{key}: expected 'module:function', got {spec!r}")
    module, attr = spec.split(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{key}: cannot import {spec!r} ({e})") from e
    if not callable(obj):
        raise ValueError(f"{key}: {spec!r} is not callable")
    return obj


def _number(value) -> float:
    return float(np.mean(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                                    dtype=np.float64)))


def _columns(rows) -> dict:
    """Numeric columns of a list of row dicts, as lists (non-numeric columns are dropped)."""
    rows = list(rows)
    keys = [k for k, v in rows[0].items() if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    return {k: [float(r[k]) for r in rows] for k in keys}


class ProbeLabels(Denoiser):
    """A class-conditional model seen through the noisy probes: an input ``x = y_i + sigma n_i`` gets the
    label of probe ``i``, found as the nearest of the candidates ``y_j + sigma n_j`` (an exact match)."""

    def __init__(self, model, probes: Probes):
        super().__init__()
        self.model = model
        self.points = torch.cat([probes.train, probes.val]).reshape(len(probes.probe_labels), -1).double()
        self.noise = torch.cat([probes.train_noise, probes.val_noise]).reshape(len(probes.probe_labels), -1).double()
        self.labels = probes.probe_labels

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma)
        flat = x.reshape(len(x), -1).double().cpu()
        labels = torch.empty(len(x), dtype=torch.long)
        for v in s.unique():
            rows = (s == v).cpu()
            labels[rows] = self.labels[torch.cdist(flat[rows], self.points + float(v) * self.noise).argmin(1)]
        return self.model(x, s, labels)


def error_metric(fn):
    """Model metric: per-sigma train/validation denoising error on the fixed probes (convention above);
    a class-conditional model is evaluated with each probe's own label (:class:`ProbeLabels`)."""
    def metric(model, probes: Probes) -> dict:
        den = model if probes.probe_labels is None else ProbeLabels(model, probes)
        rows = fn(den, probes.train, probes.val, probes.sigmas, train_noise=probes.train_noise,
                  val_noise=probes.val_noise, progress=False)
        return _columns(rows)
    return metric


def replicates_metric(fn):
    """Sample metric: replicate fractions of the samples against the training set (convention above)."""
    def metric(samples, probes: Probes) -> dict:
        result = fn(samples, probes.train_set, train_labels=probes.train_labels, sample_labels=probes.sample_labels,
                    progress=False)
        rows = [dict(r) for r in getattr(result, "summary", result)]
        out = {k: v for k, v in rows[0].items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
        out["replicates_by_group"] = rows
        return out
    return metric


def fidelity_metric(fn, name: str, references: dict | None = None):
    """Sample metric ``name``: ``fn(samples)``, or ``fn(samples, reference)`` for each ``{suffix: reference}``
    recorded as ``name_<suffix>`` (as ``name`` for the suffix ``''``)."""
    def metric(samples, probes: Probes) -> dict:
        if not references:
            return {name: _number(fn(samples))}
        return {f"{name}_{ref}" if ref else name: _number(fn(samples, obj)) for ref, obj in references.items()}
    return metric


def _positional(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def auto_fidelity(probes: Probes, data_name: str) -> tuple[str, dict]:
    """``(spec, references)`` of the fidelity measure that fits the data (see the module docstring)."""
    truth = probes.truth or {}
    if data_name == "mondrian":
        return "compare.fidelity:mondrian_valid_fraction", {}
    if {"weights", "means", "covs"} <= set(truth) and len(probes.val_set):
        return "compare.fidelity:sliced_wasserstein", {"val": probes.val_set}
    return "compare.fidelity:sliced_wasserstein", _sets(probes)


def _sets(probes: Probes) -> dict:
    """The non-empty reference sets ``{'train': ..., 'val': ...}``."""
    return {k: v for k, v in (("train", probes.train_set), ("val", probes.val_set)) if len(v)}


class Measurement:
    """``measurement(model) -> dict``: all metrics of one checkpoint on fixed probes and fixed sampling noise.

    Args:
        probes: the fixed inputs (:func:`make_probes`).
        model_metrics: ``{name: metric(model, probes) -> dict}``.
        sample_metrics: ``{name: metric(samples, probes) -> dict}`` (samples drawn only when there are some).
        sampler, sample_steps, sigma_min, sigma_max: the sampler and its EDM grid (:func:`memgen.edm_sigmas`).
        batch_size: samples drawn per batch.
        seed: seed of the stochastic samplers' generator.
    """

    def __init__(self, probes: Probes, *, model_metrics=None, sample_metrics=None, sampler: str = "heun",
                 sample_steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0,
                 batch_size: int = 256, seed: int = 0):
        self.probes = probes
        self.model_metrics = dict(model_metrics or {})
        self.sample_metrics = dict(sample_metrics or {})
        for name, fn in {**self.model_metrics, **self.sample_metrics}.items():
            if not callable(fn):
                raise TypeError(f"metrics[{name!r}]: expected a callable, got {type(fn).__name__}")
        self.sampler, self.sample_steps = sampler, int(sample_steps)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.batch_size, self.seed = int(batch_size), int(seed)

    @classmethod
    def from_config(cls, measure, dataset, train_index=None, *, conditional: bool = False) -> "Measurement":
        """The standard measurement that a :class:`neural.config.MeasureConfig` describes (module docstring)."""
        probes = make_probes(dataset, train_index, probes=measure.probes, sigmas=measure.sigmas,
                             sigma_min=measure.sigma_min, sigma_max=measure.sigma_max, samples=measure.samples,
                             seed=measure.seed, conditional=conditional)
        model_metrics, sample_metrics = {}, {}
        if measure.error:
            if len(probes.val) == 0:
                raise ValueError("measure.error: the data set has no validation points; set measure.error = ''")
            model_metrics["error"] = error_metric(resolve(measure.error, "measure.error"))
        if measure.samples and measure.replicates:
            if len(probes.train_set) < 2:
                raise ValueError("measure.replicates: needs at least two training points")
            sample_metrics["replicates"] = replicates_metric(resolve(measure.replicates, "measure.replicates"))
        if measure.samples and measure.fidelity:
            if measure.fidelity == "auto":
                spec, refs = auto_fidelity(probes, dataset.name)
            else:
                spec, refs = measure.fidelity, _sets(probes)
            fn = resolve(spec, "measure.fidelity")
            refs = refs if _positional(fn) >= 2 else {}
            sample_metrics["fidelity"] = fidelity_metric(fn, spec.split(":")[1].split(".")[-1], refs)
        return cls(probes, model_metrics=model_metrics, sample_metrics=sample_metrics, sampler=measure.sampler,
                   sample_steps=measure.sample_steps, sigma_min=measure.sigma_min, sigma_max=measure.sigma_max,
                   batch_size=measure.batch_size, seed=measure.seed)

    def samples(self, model) -> torch.Tensor:
        """``N`` samples from the fixed noise (and labels), on the CPU."""
        device = next(model.parameters()).device
        sigmas = edm_sigmas(self.sample_steps, self.sigma_min, self.sigma_max)
        noise, labels = self.probes.sample_noise, self.probes.sample_labels
        out = []
        for k, b0 in enumerate(range(0, len(noise), self.batch_size)):
            den = model if labels is None else model.with_labels(labels[b0:b0 + self.batch_size])
            g = torch.Generator(device).manual_seed(self.seed + k)
            x = sample(den, noise[b0:b0 + self.batch_size].to(device), sigmas, method=self.sampler, generator=g)
            out.append(x.cpu())
        return torch.cat(out)

    def __call__(self, model) -> dict:
        was_training = model.training
        model.eval()
        try:
            row = {}
            for fn in self.model_metrics.values():
                row.update(fn(model, self.probes))
            if self.sample_metrics and len(self.probes.sample_noise):
                with torch.no_grad():
                    samples = self.samples(model)
                for fn in self.sample_metrics.values():
                    row.update(fn(samples, self.probes))
        finally:
            model.train(was_training)
        return row


def measure_run(run_dir, *, overrides=(), steps=None, out: str = "metrics_post.jsonl", metrics=None,
                device: str = "cpu", progress: bool = True) -> Path:
    """Measure the saved grid checkpoints of a run, afterwards, into ``run_dir / out`` (JSON lines).

    Args:
        overrides: ``measure.key=value`` changes to the run's ``[measure]`` settings.
        steps: the grid steps to measure (default: all saved ones).
        metrics: a callable ``metrics(model) -> dict`` replacing the configured measurement.
    Each row holds the training row of its step (step, images seen, training loss), updated with
    the new measurements. The probes follow the run's recorded training indices.
    """
    run_dir = Path(run_dir)
    for item in overrides:
        if not item.split("=", 1)[0].strip().startswith("measure."):
            raise ValueError(f"overrides: {item!r} is not a measure.* setting; a run's training is fixed")
    cfg = apply_overrides(load_config(run_dir / "config.toml"), overrides)
    record = json.loads((run_dir / "record.json").read_text())
    saved = dict(ckpt.list_checkpoints(run_dir))
    todo = sorted(saved) if steps is None else [int(s) for s in steps]
    missing = [s for s in todo if s not in saved]
    if missing:
        raise ValueError(f"steps: no checkpoint saved at {missing}; saved: {sorted(saved)}")
    if metrics is None:
        data = memgen.data.load(cfg.data.name, **cfg.data.params)
        metrics = Measurement.from_config(cfg.measure, data, record["train_index"],
                                          conditional=record["num_classes"] is not None)
    trained = {r["step"]: r for r in ckpt.read_metrics(run_dir)}
    rows = []
    with cpu_threads(cfg.train.threads):                  # measure with the threads the run trained with
        for step in tqdm(todo, desc="checkpoints", disable=not progress):
            model = ckpt.load_denoiser(saved[step], ema=cfg.measure.use_ema, device=device)
            keep = {k: trained[step][k] for k in ("step", "images_seen", "train_loss", "lr")
                    if k in trained.get(step, {})}
            rows.append({**keep, "step": step, **metrics(model)})
            ckpt.write_metrics(run_dir / out, rows)
    return run_dir / out
