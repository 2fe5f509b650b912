"""Sweeps: a grid of settings (data size, width, batch, lr, ...) -> one run folder per point.

``sweep.json`` in the sweep folder records the axes, the base config and, per run, its folder and
values, so that :func:`compare.timescales.sweep_timescales` can read the sweep without this package.
Runs are executed one after another (``'local'``), in parallel processes (``'process'``,
:class:`concurrent.futures.ProcessPoolExecutor`), or as a job array through submitit
(``'submitit'``: SLURM on a cluster, or submitit's local executor). A run interrupted anywhere
resumes when the sweep is started again (finished runs are skipped by :func:`neural.train`).
"""
from __future__ import annotations

import itertools
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from memgen.run_files import atomic_write_json

from .config import Config, as_config, with_values

EXECUTORS = ("local", "process", "submitit")


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


def run_one(config: dict, run_dir: str, metrics=None) -> str:
    """Train one run of a sweep (a top-level function, so that executors can pickle it)."""
    from .training import train

    return str(train(Config.from_dict(config), run_dir, metrics=metrics))


def run_sweep(config, axes: dict, sweep_dir, *, metrics=None, executor: str = "local", workers: int = 2,
              cluster: str | None = None, slurm: dict | None = None) -> list[Path]:
    """Run the grid ``axes`` over the base ``config`` into ``sweep_dir``; returns the run folders.

    Args:
        metrics: the registry of metrics each run measures from (see :func:`neural.train`); it must pickle
            (module-level functions do) for the ``'process'`` and ``'submitit'`` executors.
        executor: ``'local'`` (sequential), ``'process'`` (``workers`` parallel processes) or
            ``'submitit'`` (one job per run via ``submitit.AutoExecutor``).
        cluster: submitit's cluster (``None``: SLURM when available, else local; ``'local'``, ``'slurm'``, ``'debug'``).
        slurm: parameters for ``executor.update_parameters`` (e.g. ``{'timeout_min': 600, 'gpus_per_node': 1,
            'slurm_partition': 'gpu'}``).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {EXECUTORS}, got {executor!r}")
    runs = plan(config, axes, sweep_dir)
    configs, dirs = [r["config"] for r in runs], [r["dir"] for r in runs]
    if executor == "local":
        return [Path(run_one(c, d, metrics)) for c, d in zip(configs, dirs)]
    if executor == "process":
        if int(workers) < 1:
            raise ValueError(f"workers: expected a positive integer, got {workers!r}")
        with ProcessPoolExecutor(int(workers), mp_context=multiprocessing.get_context("spawn")) as pool:
            return [Path(p) for p in pool.map(run_one, configs, dirs, [metrics] * len(runs))]
    import submitit

    ex = submitit.AutoExecutor(folder=Path(sweep_dir) / "submitit", cluster=cluster)
    if slurm:
        ex.update_parameters(**slurm)
    jobs = ex.map_array(run_one, configs, dirs, [metrics] * len(runs))
    return [Path(job.result()) for job in jobs]
