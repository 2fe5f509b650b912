"""Measurement of a model at a checkpoint, on FIXED probes with FIXED noise, as one flat JSON row.

A metric is any callable with one signature, ``metric(snap: Snapshot) -> dict``: it reads the
checkpoint's ``snap.model`` (a :class:`memgen.Denoiser` in eval mode), the run's fixed ``snap.probes``
(:class:`Probes`: probe points with their noise, the training and validation sets, labels, the data's
known truth) and, if it needs them, ``snap.samples``: ``N`` samples drawn on first use from fixed noise
(the same at every checkpoint) with :func:`memgen.sample` on an EDM grid, shared by all metrics of the
checkpoint. A metric that reads ``snap.samples`` is marked with :func:`uses_samples`, so that a
measurement without samples (``measure.samples = 0``) leaves it out.

A :class:`Measurement` holds the probes and a mapping ``{name: metric}`` and merges their dicts into
one row. This package knows no metric: the caller passes a registry ``{name: metric}`` and a run
measures the names its ``[measure] metrics`` lists (:func:`select`). The command line and the figures
pass :data:`lab.run_metrics.METRICS` (the generalization gap, replicates and fidelity measures of
:mod:`compare`), so ``neural`` imports neither ``compare`` nor ``toymodels``.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

import memgen.data
from memgen.checks import integer
from memgen.contract import model_device
from memgen.noise import edm_sigmas, log_sigmas
from memgen.progress import progress_bar
from memgen.run_files import read_record, recorded_train_index
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

    @property
    def train_probe_labels(self) -> torch.Tensor | None:
        """Labels of the ``train`` probes (class-conditional runs), else None."""
        return None if self.probe_labels is None else self.probe_labels[:len(self.train)]

    @property
    def val_probe_labels(self) -> torch.Tensor | None:
        """Labels of the ``val`` probes (class-conditional runs), else None."""
        return None if self.probe_labels is None else self.probe_labels[len(self.train):]


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


class Snapshot:
    """One checkpoint as its metrics see it: ``model`` (eval mode), ``probes`` and the lazily drawn ``samples``."""

    def __init__(self, model, probes: Probes, draw: Callable):
        self.model, self.probes = model, probes
        self._draw, self._samples = draw, None

    @property
    def samples(self) -> torch.Tensor:
        """``N`` samples from the run's fixed noise (and labels ``probes.sample_labels``), drawn on first use, on the CPU."""
        if self._samples is None:
            self._samples = self._draw(self.model)
        return self._samples


Metric = Callable[[Snapshot], dict]
"""``metric(snap) -> dict``: the one signature of a metric (module docstring)."""


def uses_samples(metric: Metric) -> Metric:
    """Mark ``metric`` as one that reads ``snap.samples`` (left out when a measurement draws no samples)."""
    metric.uses_samples = True
    return metric


def select(registry: Mapping[str, Metric], names) -> dict[str, Metric]:
    """``{name: registry[name]}`` for the ``names`` a run's ``measure.metrics`` lists.

    An unknown name raises a ValueError naming ``measure.metrics`` and the closest registered name.
    """
    if not isinstance(registry, Mapping):
        raise TypeError(f"metrics: expected a registry {{name: metric}}, got {type(registry).__name__}")
    for name in names:
        if name not in registry:
            close = difflib.get_close_matches(name, list(registry), n=1)
            raise ValueError(f"measure.metrics: {name!r} is not a metric of the registry passed"
                             + (f"; did you mean {close[0]!r}?" if close else f"; it has {sorted(registry)}"))
    return {name: registry[name] for name in names}


class Measurement:
    """``measurement(model) -> dict``: all metrics of one checkpoint on fixed probes and fixed sampling noise.

    Args:
        probes: the fixed inputs (:func:`make_probes`).
        metrics: ``{name: metric}``, each ``metric(snap) -> dict`` (module docstring); their dicts are merged.
        sampler, sample_steps, sigma_min, sigma_max: the sampler and its EDM grid (:func:`memgen.edm_sigmas`).
        batch_size: samples drawn per batch.
        seed: seed of the stochastic samplers' generator.
    """

    def __init__(self, probes: Probes, metrics: Mapping[str, Metric], *, sampler: str = "heun",
                 sample_steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0,
                 batch_size: int = 256, seed: int = 0):
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics: expected a mapping {{name: metric}}, got {type(metrics).__name__}")
        for name, fn in metrics.items():
            if not callable(fn):
                raise TypeError(f"metrics[{name!r}]: expected a callable metric(snap) -> dict, got {type(fn).__name__}")
        self.probes = probes
        drawn = len(probes.sample_noise) > 0
        self.metrics = {k: fn for k, fn in metrics.items() if drawn or not getattr(fn, "uses_samples", False)}
        self.sampler, self.sample_steps = sampler, integer(sample_steps, "sample_steps")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.batch_size, self.seed = integer(batch_size, "batch_size"), integer(seed, "seed", 0)

    @classmethod
    def from_config(cls, measure, dataset, registry: Mapping[str, Metric], train_index=None, *,
                    conditional: bool = False) -> "Measurement":
        """The metrics of ``registry`` that a :class:`neural.config.MeasureConfig` names (``metrics``), on the
        probes and with the sampler it describes."""
        metrics = select(registry, measure.metrics)
        probes = make_probes(dataset, train_index, probes=measure.probes, sigmas=measure.sigmas,
                             sigma_min=measure.sigma_min, sigma_max=measure.sigma_max, samples=measure.samples,
                             seed=measure.seed, conditional=conditional)
        return cls(probes, metrics, sampler=measure.sampler, sample_steps=measure.sample_steps,
                   sigma_min=measure.sigma_min, sigma_max=measure.sigma_max, batch_size=measure.batch_size,
                   seed=measure.seed)

    def samples(self, model) -> torch.Tensor:
        """``N`` samples from the fixed noise (and labels), on the CPU."""
        device = model_device(model)
        sigmas = edm_sigmas(self.sample_steps, self.sigma_min, self.sigma_max)
        noise, labels = self.probes.sample_noise, self.probes.sample_labels
        out = []
        with torch.no_grad():
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
            snap, row = Snapshot(model, self.probes, self.samples), {}
            for fn in self.metrics.values():
                row.update(fn(snap))
        finally:
            model.train(was_training)
        return row


def measure_run(run_dir, metrics: Mapping[str, Metric], *, overrides=(), steps=None, out: str = "metrics_post.jsonl",
                device: str = "cpu", progress: bool = True) -> Path:
    """Measure the saved grid checkpoints of a run, afterwards, into ``run_dir / out`` (JSON lines).

    Args:
        metrics: the registry ``{name: metric}`` (module docstring) in which the run's ``measure.metrics``
            are looked up (e.g. :data:`lab.run_metrics.METRICS`).
        overrides: ``measure.key=value`` changes to the run's ``[measure]`` settings (e.g. ``measure.metrics``).
        steps: the grid steps to measure (default: all saved ones).
    Each row holds the training row of its step (step, images seen, training loss), updated with
    the new measurements. The probes follow the run's recorded training indices.
    """
    run_dir = Path(run_dir)
    for item in overrides:
        if not item.split("=", 1)[0].strip().startswith("measure."):
            raise ValueError(f"overrides: {item!r} is not a measure.* setting; a run's training is fixed")
    cfg = apply_overrides(load_config(run_dir / "config.toml"), overrides)
    record = read_record(run_dir)
    saved = dict(ckpt.list_checkpoints(run_dir))
    todo = sorted(saved) if steps is None else [int(s) for s in steps]
    missing = [s for s in todo if s not in saved]
    if missing:
        raise ValueError(f"steps: no checkpoint saved at {missing}; saved: {sorted(saved)}")
    data = memgen.data.load(cfg.data.name, **cfg.data.params)
    train_index = recorded_train_index(record, len(data.x), run_dir)
    measurement = Measurement.from_config(cfg.measure, data, metrics, train_index,
                                          conditional=record["num_classes"] is not None)
    trained = {r["step"]: r for r in ckpt.read_metrics(run_dir)}
    rows = []
    with cpu_threads(cfg.train.threads):                  # measure with the threads the run trained with
        for step in progress_bar(todo, enabled=progress, desc="checkpoints"):
            model = ckpt.load_denoiser(saved[step], ema=cfg.measure.use_ema, device=device)
            keep = {k: trained[step][k] for k in ("step", "images_seen", "train_loss", "lr")
                    if k in trained.get(step, {})}
            rows.append({**keep, "step": step, **measurement(model)})
            ckpt.write_metrics(run_dir / out, rows)
    return run_dir / out
