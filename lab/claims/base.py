"""What a claim is: its statement, the paper's number, a criterion fixed before the run, its controls and its runs per scale.

A :class:`Claim` declares, for each scale (``quick``: CI, seconds; ``cpu``: a 2-core machine; ``paper``:
a GPU), the settings of its experiment, and a ``run(settings, out_dir, seeds, progress)`` function that
runs it, measures, plots, and returns an :class:`Outcome`: the conditions of the criterion stated in the
claim module's docstring, each a :class:`~lab.claims.verdicts.Condition` with its number and interval
(the two-level bootstrap over seeds and units defined in :mod:`lab.claims.verdicts`), from which the
verdict is computed.

Each claim also declares two :class:`Control` runs with the same signature, judged by the same criterion on
the same settings: a positive control (a model or setting for which the claim must hold) and a negative
control (one for which it must fail: the empirical denoiser, an untrained network, a model that ignores
its training set, ...). A criterion that also passes its negative control cannot tell a model with the
effect from one without, and the report says so (``not testable here``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from compare.bootstrap import bootstrap, weighted_mean
from compare.timescales import fit_tau_mem

from .verdicts import verdict

SCALES = ("quick", "cpu", "paper")


@dataclass
class Outcome:
    """The criterion's ``conditions`` (their verdict is :attr:`verdict`), ``our_value`` (a short text of the main
    numbers for the table), the ``figure`` file (relative to the claim's folder, or None), every number behind
    them in ``numbers``, and ``regimes``: one row per trained run with its replicate fraction and
    :func:`regime` (empty for claims without networks)."""

    conditions: list
    our_value: str
    figure: str | None = None
    numbers: dict = field(default_factory=dict)
    regimes: list = field(default_factory=list)

    @property
    def verdict(self) -> tuple[str, str]:
        """``(word, reason)`` of :func:`lab.claims.verdicts.verdict`."""
        return verdict(self.conditions)


@dataclass(frozen=True)
class Control:
    """A control of a claim: what it is (``description``) and its ``run``, with the signature of
    :attr:`Claim.run`, judged by the claim's criterion."""

    description: str
    run: Callable[[dict, Path, list, bool], Outcome]


@dataclass(frozen=True)
class Claim:
    """A claim of a paper: ``statement``, the paper's number (``paper_value``), settings per scale, its ``run``,
    its ``positive`` and ``negative`` :class:`Control` (module doc), and ``runs(settings, seeds)``, the
    ``(values, seed)`` of every network it trains (:func:`lab.claims.networks.trained`; ``values``: the run's
    config values, ``{'section.key': value}``)."""

    number: int
    paper: str
    statement: str
    paper_value: str
    scales: dict
    run: Callable[[dict, Path, list, bool], Outcome]
    positive: Control | None = None
    negative: Control | None = None
    runs: Callable[[dict, list], list] | None = None

    def planned_runs(self, scale: str, seeds: list, roots: dict | None = None) -> list:
        """``[(values, seed)]`` of the networks the claim and its controls train at ``scale`` (``runs``, if
        declared), so that a report can train them side by side before the claim reads them."""
        return list(self.runs(self.settings(scale, roots), seeds)) if self.runs else []

    def settings(self, scale: str, roots: dict | None = None) -> dict:
        """The claim's settings at ``scale``. ``roots``: ``{data set name: folder}`` of the user's local copies
        (``{'cifar10': '/data/cifar'}``), given as the ``root`` of each of the settings' ``data_sets`` of that name."""
        if scale not in SCALES:
            raise ValueError(f"scale: expected one of {SCALES}, got {scale!r}")
        s = dict(self.scales[scale])
        if roots and "data_sets" in s:
            s["data_sets"] = tuple({**d, "params": {**d.get("params", {}), "root": roots[d["name"]]}}
                                   if d["name"] in roots else d for d in s["data_sets"])
        return s


REGIME_THRESHOLD = 0.5
"""A run whose samples replicate (ratio criterion) in less than this fraction generalizes; above it, memorizes."""

NOVEL_MAX = 0.1
"""A checkpoint is novel when its replicate fraction's upper bound is below this (samples essentially novel: the
ratio criterion counts a few per cent of a perfect generator's samples as replicates in low dimension)."""


def last_novel(rows) -> int | None:
    """The step of the last of ``rows`` (with ``step`` and ``replicate_fraction_hi``) whose replicate fraction's
    upper bound is below :data:`NOVEL_MAX`; None when there is none."""
    novel = [r["step"] for r in rows if r["replicate_fraction_hi"] < NOVEL_MAX]
    return novel[-1] if novel else None


def regime(fraction_lo: float, fraction_hi: float) -> str:
    """The regime of a run from its replicate fraction's interval: ``generalizing`` (interval below
    :data:`REGIME_THRESHOLD`: samples mostly novel), ``memorizing`` (above it), else ``between``."""
    if fraction_hi < REGIME_THRESHOLD:
        return "generalizing"
    if fraction_lo > REGIME_THRESHOLD:
        return "memorizing"
    return "between"


def progress_bar(items, claim: int, progress: bool):
    """``items`` under a progress bar (with rate and ETA) named after the claim; silent when not a TTY."""
    from memgen.progress import progress_bar

    return progress_bar(list(items), enabled=progress, desc=f"claim {claim}", leave=False)


def new_figure(ncols: int = 1, figsize=(5.5, 4)):
    """``(fig, ax)`` (``axes`` when ``ncols > 1``) on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(1, ncols, figsize=figsize, constrained_layout=True)


def save_figure(fig, out: Path, *, xlabel: str | None = None, ylabel: str | None = None, log_x: bool = True) -> str:
    """Label the (first) axes, save ``out/claim.png`` atomically, close the figure; returns the file name."""
    import matplotlib.pyplot as plt

    from memgen.run_files import atomic_save_figure

    ax = fig.axes[0]
    if log_x:
        ax.set_xscale("log")
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    atomic_save_figure(fig, Path(out) / "claim.png", dpi=100)
    plt.close(fig)
    return "claim.png"


def seed_labels(counts) -> np.ndarray:
    """The seed label of each unit when seed ``k`` contributed ``counts[k]`` units in order (for ``clusters``)."""
    return np.repeat(np.arange(len(counts)), np.asarray(counts, dtype=np.int64))


def joint_interval(groups, statistic, *, seed: int = 0, n_boot: int = 2000):
    """``(estimate, lo, hi)`` of ``statistic(means)`` (``means``: ``[r, G]``, the weighted mean of each group's
    unit values in each replicate; returns ``[r, k]``) under the two-level bootstrap with the seeds drawn jointly
    for all groups, so differences between groups are paired. ``groups[g][k]``: the unit values (e.g. replicate
    flags of samples) of group ``g`` at seed ``k``; every group has every seed."""
    values = [np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in per]) for per in groups]
    labels = [seed_labels([np.size(v) for v in per]) for per in groups]

    def stat(*w):
        return statistic(np.stack([weighted_mean(wg, vg) for wg, vg in zip(w, values)], axis=1))
    return bootstrap(stat, *[v.size for v in values], clusters=labels, n_boot=n_boot, seed=seed)


def seed_mean(values_per_seed, *, seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of all units of all seeds (``values_per_seed``: one array of unit values per
    seed) with the two-level bootstrap interval of :mod:`lab.claims.verdicts` (seeds, then units): the
    :func:`joint_interval` of one group."""
    est, lo, hi = joint_interval([values_per_seed], lambda m: m, seed=seed, n_boot=n_boot)
    return float(est[0]), float(lo[0]), float(hi[0])


def fmt(x: float) -> str:
    """A number for the table: 3 significant digits, ``n/a`` for NaN, ``inf`` kept."""
    x = float(x)
    return "n/a" if np.isnan(x) else f"{x:.3g}"


def fmt_interval(lo: float, hi: float) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]"


def loglog_fit(x, tau, seed: int, clusters=None) -> dict:
    """:func:`compare.timescales.fit_tau_mem` of ``tau`` against ``x`` (``clusters``: each run's seed, for the
    two-level bootstrap), or, when too few runs memorized to fit, the reason under ``error`` and NaN slope and
    interval (the verdict then reads the condition as not measured)."""
    try:
        return fit_tau_mem(x, tau, seed=seed, clusters=clusters)
    except ValueError as e:
        return {"error": str(e), "slope": float("nan"), "slope_boot_lo": float("nan"), "slope_boot_hi": float("nan")}
