"""What a claim is: its statement, the paper's number, a criterion fixed before the run, and its runs per scale.

A :class:`Claim` declares, for each scale (``quick``: CI, seconds; ``cpu``: a 2-core machine; ``paper``:
a GPU), the settings of its experiment, and a ``run(settings, out_dir, seeds, progress)`` function that
runs it, measures, plots, and returns an :class:`Outcome` whose verdict is computed by
:mod:`figures.claims.verdicts` from the criterion in the claim's docstring. Numbers over several seeds
are reported as the mean over seeds with the envelope of the per-seed intervals (the lowest lower
bound to the highest upper bound), so the interval covers both the spread over seeds and, where a
per-seed interval comes from a bootstrap over samples or points, the spread over those.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from compare.timescales import fit_tau_mem

SCALES = ("quick", "cpu", "paper")


@dataclass
class Outcome:
    """``our_value`` and ``interval`` as short text for the table, the ``verdict`` word, the ``figure`` file
    (relative to the claim's folder, or None), and every number behind them in ``numbers``."""

    our_value: str
    interval: str
    verdict: str
    figure: str | None = None
    numbers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    number: int
    paper: str
    statement: str
    paper_value: str
    scales: dict
    run: Callable[[dict, Path, list, bool], Outcome]
    criterion: str = ""

    def settings(self, scale: str) -> dict:
        if scale not in SCALES:
            raise ValueError(f"scale: expected one of {SCALES}, got {scale!r}")
        return dict(self.scales[scale])


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

    from memgen.runs import atomic_save_figure

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


def envelope(values, los, his) -> tuple[float, float, float]:
    """``(mean of values, min of los, max of his)`` over seeds, NaN entries ignored (all NaN: NaN)."""
    v, lo, hi = (np.asarray(a, dtype=np.float64) for a in (values, los, his))
    with np.errstate(all="ignore"):
        if np.isnan(v).all():
            return float("nan"), float("nan"), float("nan")
        return float(np.nanmean(v)), float(np.nanmin(lo)), float(np.nanmax(hi))


def fmt(x: float) -> str:
    """A number for the table: 3 significant digits, ``n/a`` for NaN, ``inf`` kept."""
    x = float(x)
    return "n/a" if np.isnan(x) else f"{x:.3g}"


def fmt_interval(lo: float, hi: float) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]"


def loglog_fit(x, tau, seed: int) -> dict:
    """:func:`compare.timescales.fit_tau_mem` of ``tau`` against ``x``, or, when too few runs memorized to fit,
    the reason under ``error`` and NaN slope and interval (the verdict then reads the condition as not measured)."""
    try:
        return fit_tau_mem(x, tau, seed=seed)
    except ValueError as e:
        return {"error": str(e), "slope": float("nan"), "slope_boot_lo": float("nan"), "slope_boot_hi": float("nan")}
