"""Timescales of training from a checkpoint series, and the scaling of the memorization time with n.

A run's metrics file (``metrics.jsonl``: one JSON row per checkpoint, with ``step`` and metric
columns) gives series ``v_k`` at steps ``t_1 < ... < t_K``.

* Generalization time (quality settles on its plateau), for a quality ``q`` where lower is better
  (``higher_is_better`` flips the sign): over the checkpoints up to ``until`` (the memorization time, so
  the plateau is that of the generalizing phase), with the best value ``q* = min q_k`` reached at ``k*``
  and the band ``B = q* + tol (q_1 - q*)``, ``tau_gen`` is the settling time into the band,
  ``tau_gen = t_k`` for the smallest ``k`` with ``q_j <= B`` for every ``k <= j <= k*``: the quality has
  made a fraction ``1 - tol`` of its whole improvement and stays there up to its best value. An early
  dip that leaves the band again is not a plateau. Scale-free, so it applies to distances,
  likelihoods and valid fractions alike.
* Memorization time: for a memorization measure ``m`` (the replicate fraction, or the relative
  val-train loss gap at a noise level) and a threshold ``theta``, the first upward crossing,
  interpolated linearly in log-step: with ``k`` the first index where ``m_k >= theta``,
  ``log tau_mem = log t_{k-1} + (theta - m_{k-1}) / (m_k - m_{k-1}) (log t_k - log t_{k-1})``
  (``t_1`` when ``m_1 >= theta``; ``inf`` when the series never crosses: censored).
* Scaling: ``log tau_mem = a + b log n`` by least squares over the runs with a finite ``tau_mem``;
  the slope ``b`` (1 when ``tau_mem ∝ n``, Bonnaire et al.; Marion & Wu) is reported with the
  Student-t interval of the least-squares slope and a percentile bootstrap over runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from memgen.run_files import metrics_path, read_json, read_jsonl, read_record

from memgen.checks import as_values, finite, in_interval

from .bootstrap import bootstrap, check_bootstrap
from .records import Records

HIGHER_IS_BETTER = ("mondrian_valid_fraction", "log_likelihood")
"""Quality columns where larger is better (every other quality column: smaller is better)."""


def metric_rows(run) -> list[dict]:
    """Rows of a run's metrics: a run folder (its ``metrics.jsonl``), a JSONL file, or a list of rows.

    A missing file raises (a time scale of a run that was never measured is an error), unlike
    ``neural.read_metrics``, which reads a run folder during training and returns ``[]`` before the first row.
    """
    if isinstance(run, (list, tuple)):
        return list(run)
    path = metrics_path(run)
    if not path.exists():
        raise ValueError(f"run: no metrics file at {path}")
    return read_jsonl(path)


def series(rows, key: str, *, sigma: float | None = None, reduce: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of column ``key`` over the rows that have it, sorted by step.

    A per-sigma column (a list, e.g. ``gap``) is reduced to one number per row: its value at the noise
    level nearest ``sigma`` (from the row's ``sigma`` column), or ``reduce`` = ``'max'``/``'mean'`` over sigma.
    """
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce: expected 'max' or 'mean', got {reduce!r}")
    steps, values = [], []
    for row in rows:
        v = row.get(key)
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            arr = np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)
            if sigma is not None:
                v = arr[int(np.argmin(np.abs(np.log(np.asarray(row["sigma"], dtype=np.float64) / float(sigma)))))]
            else:
                v = np.nanmax(arr) if reduce == "max" else np.nanmean(arr)
        steps.append(float(row["step"]))
        values.append(float(v))
    if not steps:
        raise ValueError(f"key: no row has a value for {key!r}")
    order = np.argsort(steps)
    return np.asarray(steps)[order], np.asarray(values)[order]


def _check_series(steps, values, name: str = "values") -> tuple[np.ndarray, np.ndarray]:
    t, v = as_values(steps, "steps", lo=0.0, closed="neither").numpy(), as_values(values, name).numpy()
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"steps: expected a non-empty 1-D array, got shape {t.shape}")
    if t.shape != v.shape:
        raise ValueError(f"{name}: expected one value per step ({t.shape}), got shape {v.shape}")
    if (np.diff(t) <= 0).any():
        raise ValueError("steps: expected strictly increasing positive steps")
    return t, v


def tau_gen(steps, quality, *, tol: float = 0.1, higher_is_better: bool = False,
            until: float = float("inf")) -> float:
    """Settling time of the quality into the band ``tol`` of its whole improvement, over the checkpoints
    up to ``until`` (module doc): the first step from which it stays in the band up to its best value."""
    t, q = _check_series(steps, quality, "quality")
    tol = in_interval(tol, "tol", 0.0, 1.0, closed="left")
    if isinstance(until, bool) or not isinstance(until, (int, float, np.integer, np.floating)) or not until > 0:
        raise ValueError(f"until: expected a step > 0 (inf when the run never memorized), got {until!r}")
    q = -q[t <= max(until, t[0])] if higher_is_better else q[t <= max(until, t[0])]
    best = int(np.argmin(q))
    outside = np.flatnonzero(q[:best + 1] - q[best] > float(tol) * (q[0] - q[best]))
    return float(t[0 if outside.size == 0 else outside[-1] + 1])


def tau_mem(steps, values, *, threshold: float = 0.1) -> float:
    """First upward crossing of ``threshold``, interpolated in log-step (``inf`` if never crossed)."""
    t, m = _check_series(steps, values)
    threshold = finite(threshold, "threshold")
    above = np.flatnonzero(m >= float(threshold))
    if above.size == 0:
        return float("inf")
    k = int(above[0])
    if k == 0:
        return float(t[0])
    frac = (float(threshold) - m[k - 1]) / (m[k] - m[k - 1])
    return float(np.exp(np.log(t[k - 1]) + frac * (np.log(t[k]) - np.log(t[k - 1]))))


def timescales(run, *, quality: str | None = None, memorization: str = "replicate_fraction",
               threshold: float = 0.1, tol: float = 0.1, higher_is_better: bool | None = None,
               sigma: float | None = None) -> dict:
    """``{'tau_gen', 'tau_mem', ...}`` of one run (folder, metrics file or rows).

    Args:
        quality: the quality column (e.g. ``sliced_wasserstein_val``, ``log_likelihood``,
            ``mondrian_valid_fraction``); ``None`` skips tau_gen.
        memorization: the memorization column: ``replicate_fraction``, or ``gap`` (relative val-train
            loss gap; at the noise level nearest ``sigma``, else its maximum over sigma).
        threshold: the crossing level of tau_mem; tol: the plateau tolerance of tau_gen.
        higher_is_better: direction of ``quality`` (default: True for the columns in HIGHER_IS_BETTER).
    """
    rows = metric_rows(run)
    out = {"memorization": memorization, "threshold": float(threshold)}
    t, m = series(rows, memorization, sigma=sigma)
    out["tau_mem"] = tau_mem(t, m, threshold=threshold)
    out["final_memorization"] = float(m[-1])
    if quality is not None:
        hib = quality.startswith(HIGHER_IS_BETTER) if higher_is_better is None else bool(higher_is_better)
        tq, q = series(rows, quality, sigma=sigma)
        out.update(quality=quality, tol=float(tol),
                   tau_gen=tau_gen(tq, q, tol=tol, higher_is_better=hib, until=out["tau_mem"]),
                   best_quality=float(q.max() if hib else q.min()))
    return out


def sweep_timescales(sweep_dir, **kwargs) -> Records:
    """One row per run of a sweep folder (``sweep.json``): its grid values, ``n`` (training points
    actually used, from the run's ``record.json``) and :func:`timescales` with ``kwargs``."""
    sweep_dir = Path(sweep_dir)
    spec = read_json(sweep_dir / "sweep.json")
    rows = Records()
    for run in spec["runs"]:
        run_dir = sweep_dir / run["name"]
        record = read_record(run_dir)
        rows.append({"name": run["name"], **run["values"], "n": record["n_train"], **timescales(run_dir, **kwargs)})
    return rows


def fit_tau_mem(n, tau, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0, clusters=None) -> dict:
    """Fit ``log tau = a + b log n`` (module doc): slope, intercept, t-interval and bootstrap interval of the slope.

    Runs with an infinite or NaN ``tau`` (never memorized) are left out; ``n_used`` says how many remain
    (at least 3 are needed). Bootstrap replicates that drew runs of one size only have no slope and are left
    out of the quantiles. ``clusters`` (each run's seed) makes the bootstrap two-level: seeds, then runs
    within each drawn seed (:mod:`compare.bootstrap`).
    """
    check_bootstrap(n_boot, level, seed)
    x = as_values(n, "n", lo=0.0, closed="neither").numpy().reshape(-1)
    try:
        y = np.asarray(tau, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise TypeError(f"tau: expected real numbers (NaN or inf for runs that never memorized): {e}") from e
    if x.shape != y.shape:
        raise ValueError(f"n, tau: expected one tau per n, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(y)
    if (y[keep] <= 0).any():
        raise ValueError("tau: must be > 0 (the fit is in log-log)")
    lx, ly = np.log(x[keep]), np.log(y[keep])
    if lx.size < 3 or np.ptp(lx) == 0:
        raise ValueError(f"n: need at least 3 runs with finite tau at two or more sizes, got {lx.size}")
    fit = stats.linregress(lx, ly)
    half = stats.t.ppf((1 + level) / 2, lx.size - 2) * fit.stderr

    def slope(w):
        mx = (w @ lx) / w.sum(1)
        my = (w @ ly) / w.sum(1)
        dx = lx[None] - mx[:, None]
        sxx = (w * dx ** 2).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = (w * dx * (ly[None] - my[:, None])).sum(1) / sxx
        # a replicate that drew runs at one size only has no slope (round-off would give one)
        return np.where(sxx > 1e-9 * (lx ** 2).sum(), b, np.nan)[:, None]

    labels = None if clusters is None else [np.asarray(clusters).reshape(-1)[keep]]
    _, lo, hi = bootstrap(slope, lx.size, n_boot=n_boot, level=level, seed=seed, clusters=labels)
    return {"slope": float(fit.slope), "intercept": float(fit.intercept), "slope_stderr": float(fit.stderr),
            "slope_lo": float(fit.slope - half), "slope_hi": float(fit.slope + half),
            "slope_boot_lo": float(lo[0]), "slope_boot_hi": float(hi[0]), "level": float(level),
            "n_used": int(lx.size)}
