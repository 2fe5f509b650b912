"""Sweeps: a grid of settings (data size, width, batch, lr, ...) -> one run folder per point.

``sweep.json`` in the sweep folder records the axes, the base config and, per run, its folder and
values, so that :func:`compare.timescales.sweep_timescales` can read the sweep without this package.
Runs are executed by :mod:`lab.executors`: one after another (``'local'``), in parallel processes
(``'process'``), or as a job array through submitit (``'submitit'``: SLURM on a cluster, or submitit's local
executor). A run interrupted anywhere resumes when the sweep is started again (finished runs are kept).
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

from memgen.run_files import atomic_write_json

from neural.config import as_config, with_values
from .executors import EXECUTORS, run_tasks


def grid(axes: dict) -> list[dict]:
    """All combinations of the axes ``{'section.key': [values]}`` (the last axis varies fastest)."""
    if not isinstance(axes, dict) or not axes:
        raise ValueError("axes: expected a non-empty mapping of 'section.key' -> list of values")
    for key, values in axes.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"axes[{key!r}]: expected a non-empty list of values, got {values!r}")
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def run_name(index: int, values: dict) -> str:
    """Folder name of a run: its index and its values, e.g. ``003_subset=256_lr=0.001``."""
    parts = [f"{k.split('.')[-1]}={v}" for k, v in values.items()]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "", "_".join([f"{index:03d}"] + parts))


def plan(config, axes: dict, sweep_dir) -> list[dict]:
    """Validate every point's config and write ``sweep.json``; returns ``[{name, dir, values, config}]``."""
    base = as_config(config)
    sweep_dir = Path(sweep_dir)
    runs = []
    for i, values in enumerate(grid(axes)):
        cfg = with_values(base, values)
        name = run_name(i, values)
        runs.append({"name": name, "dir": str(sweep_dir / name), "values": values, "config": cfg.to_dict()})
    atomic_write_json(sweep_dir / "sweep.json", {"axes": axes, "base": base.to_dict(),
                                                  "runs": [{k: r[k] for k in ("name", "values")} for r in runs]})
    return runs


def run_sweep(config, axes: dict, sweep_dir, *, metrics=None, executor: str = "local", workers: int = 2,
              cluster: str | None = None, slurm: dict | None = None) -> list[Path]:
    """Run the grid ``axes`` over the base ``config`` into ``sweep_dir``; returns the run folders.

    ``metrics``, ``executor`` (``'local'``, ``'process'`` with ``workers`` processes, or ``'submitit'``, whose
    jobs live in ``sweep_dir/submitit``), ``cluster`` and ``slurm``: as :func:`lab.executors.run_tasks`,
    which waits here for every run.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {EXECUTORS}, got {executor!r}")
    tasks = [(r["config"], r["dir"]) for r in plan(config, axes, sweep_dir)]
    run_tasks(tasks, metrics=metrics, executor=executor, workers=workers, jobs_dir=Path(sweep_dir) / "submitit",
              cluster=cluster, slurm=slurm)
    return [Path(d) for _, d in tasks]
