"""The metrics a training run measures at its checkpoints: the registry that ``[measure] metrics`` names.

Each metric has the one signature of :mod:`neural.measure`, ``metric(snap) -> dict`` (``snap.model``,
``snap.probes``, ``snap.samples``), and is registered once, in :data:`METRICS`. Adding a metric is
writing it here (or anywhere) and adding its name to :data:`METRICS`. ``neural`` knows none of them;
the callers that train or measure (``memgen train/measure/sweep``, the claims) pass :data:`METRICS`,
and a run measures the names its ``[measure] metrics`` lists.

* ``gap``: per-sigma training and validation denoising error of the fixed probes with their fixed noise,
  and the gap ``(E_val - E_train) / E_train`` (:func:`compare.generalization_gap`); a class-conditional
  model is evaluated with each probe's own label. Every numeric column becomes a per-sigma list.
* ``replicates``: replicate fractions of the samples against the training set (:func:`compare.replicates`;
  first summary row, plus ``replicates_by_group``).
* ``fidelity``: ``mondrian_validity`` for Mondrian images (an exact rule), else ``sliced_wasserstein``, also
  for data with a known Gaussian mixture (its likelihood rewards samples collapsed onto the modes, so the
  distance to held-out data is the quality score that finds tau_gen).
* ``mondrian_validity`` -> ``mondrian_valid_fraction``; ``log_likelihood`` -> mean ``log p(sample)``
  under the known mixture; ``sliced_wasserstein`` -> ``sliced_wasserstein_train`` / ``_val`` (distance to
  the training and validation sets).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from compare.gap import generalization_gap
from compare.fidelity import log_likelihood as _log_likelihood
from compare.fidelity import mondrian_valid_fraction, sliced_wasserstein as _sliced_wasserstein
from compare.replicates import replicates as _replicates
from neural.measure import Metric, Snapshot, uses_samples
from toymodels import GMMDenoiser


def _numeric(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _mean(value) -> float:
    return float(np.mean(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                                    dtype=np.float64)))


def gap(snap: Snapshot) -> dict:
    """Per-sigma ``e_train``, ``e_val``, ``gap`` (with bounds) on the fixed probes (module docstring)."""
    p = snap.probes
    if len(p.val) == 0:
        raise ValueError("measure.metrics: 'gap' needs validation points; the data set has none")
    rows = generalization_gap(snap.model, p.train, p.val, p.sigmas, train_noise=p.train_noise, val_noise=p.val_noise,
                              train_labels=p.train_probe_labels, val_labels=p.val_probe_labels, progress=False)
    return {k: [float(r[k]) for r in rows] for k, v in rows[0].items() if _numeric(v)}


@uses_samples
def replicates(snap: Snapshot) -> dict:
    """Replicate fractions of the samples (first summary row: all samples) and ``replicates_by_group``."""
    p = snap.probes
    if len(p.train_set) < 2:
        raise ValueError("measure.metrics: 'replicates' needs at least two training points")
    result = _replicates(snap.samples, p.train_set, train_labels=p.train_labels, sample_labels=p.sample_labels,
                         progress=False)
    rows = [dict(r) for r in result.summary]
    return {**{k: v for k, v in rows[0].items() if _numeric(v)}, "replicates_by_group": rows}


@uses_samples
def mondrian_validity(snap: Snapshot) -> dict:
    """``mondrian_valid_fraction``: the fraction of samples that obey the Mondrian rules."""
    return {"mondrian_valid_fraction": _mean(mondrian_valid_fraction(snap.samples))}


@uses_samples
def log_likelihood(snap: Snapshot) -> dict:
    """``log_likelihood``: mean log-density of the samples under the data's known Gaussian mixture."""
    truth = snap.probes.truth or {}
    if not {"weights", "means", "covs"} <= set(truth):
        raise ValueError("measure.metrics: 'log_likelihood' needs data with a known Gaussian (mixture) truth")
    density = GMMDenoiser(truth["weights"], truth["means"], truth["covs"])
    return {"log_likelihood": _mean(_log_likelihood(snap.samples, density))}


@uses_samples
def sliced_wasserstein(snap: Snapshot) -> dict:
    """``sliced_wasserstein_train`` / ``_val``: distance of the samples to the (non-empty) reference sets."""
    p = snap.probes
    return {f"sliced_wasserstein_{name}": _mean(_sliced_wasserstein(snap.samples, ref))
            for name, ref in (("train", p.train_set), ("val", p.val_set)) if len(ref)}


@uses_samples
def fidelity(snap: Snapshot) -> dict:
    """Mondrian validity for Mondrian images (the rule is known), else the sliced Wasserstein distance to the
    training and held-out data: also for a known Gaussian mixture, whose likelihood rewards samples
    collapsed onto its modes (``log_likelihood`` stays available by name)."""
    if "bar_width" in (snap.probes.truth or {}):
        return mondrian_validity(snap)
    return sliced_wasserstein(snap)


METRICS: dict[str, Metric] = {"gap": gap, "replicates": replicates, "fidelity": fidelity,
                              "mondrian_validity": mondrian_validity, "log_likelihood": log_likelihood,
                              "sliced_wasserstein": sliced_wasserstein}
"""The registry: every metric a run's ``[measure] metrics`` may name."""

