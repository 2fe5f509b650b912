"""Where runs train: here one after another, in parallel processes, or as a submitit job array (SLURM on a
cluster, or submitit's local executor) -- one set of executors for the sweeps and the claims report.

A task is ``(config, run folder)``. Every run is a resumable folder, so the same tasks may be given again:
a finished run is kept (:func:`neural.train` returns at once), a killed one resumes. With submitit the call
submits one job array of the runs that are neither finished nor still queued or running (the job of each
submitted run is kept in ``<jobs folder>/jobs.json``, so a second call does not submit it twice), then either
waits for the array (``wait=True``) or returns at once with the runs still pending: calling again later
collects the finished runs and submits the missing ones.
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from memgen.checks import integer
from memgen.progress import progress_bar
from memgen.run_files import atomic_write_json, read_json

from neural.checkpoint import LATEST
from neural.config import Config, as_config
from neural.training import train

EXECUTORS = ("local", "process", "submitit")

JOBS_FILE = "jobs.json"
"""In the submitit folder: ``{run folder: job id}`` of every run submitted, to not submit a queued run twice."""

WAITING = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")
"""SLURM states of a job that may still finish its run."""


def train_task(config: dict, run_dir: str, metrics=None, processes: int = 1) -> str:
    """Train one task (a top-level function, so that every executor can pickle it); its run folder.
    ``processes > 1`` trains it data-parallel in that many processes of this machine (one per GPU on a GPU
    node), as ``torchrun --standalone --nproc_per_node`` would (:mod:`neural.ddp`)."""
    if processes == 1:
        return str(train(Config.from_dict(config), run_dir, metrics=metrics))
    import torch.multiprocessing as mp

    mp.start_processes(_rank, args=(config, run_dir, metrics, processes, _free_port()), nprocs=processes,
                       start_method="spawn")
    return str(run_dir)


def _rank(rank: int, config: dict, run_dir: str, metrics, world: int, port: int) -> None:
    """One process of a data-parallel run: the environment torchrun sets, then :func:`neural.train`."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    train(Config.from_dict(config), run_dir, metrics=metrics)


def _free_port() -> int:
    """A TCP port free on this machine now (the process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finished(config, run_dir) -> bool:
    """Whether ``run_dir`` holds the run of ``config`` trained to its last step (``latest.pt`` at
    ``train.steps``; read memory-mapped, so the check costs no more than the file's header)."""
    path = Path(run_dir) / LATEST
    if not path.is_file():
        return False
    try:
        step = torch.load(path, map_location="cpu", mmap=True, weights_only=True)["step"]
    except Exception:                       # damaged or foreign: not finished; training says why
        return False
    return int(step) >= as_config(config).train.steps


def run_tasks(tasks: list, *, metrics=None, executor: str = "local", workers: int = 2, jobs_dir=None,
              cluster: str | None = None, slurm: dict | None = None, wait: bool = True, processes: int = 1,
              progress: bool = False) -> list[str]:
    """Train every task ``(config, run_dir)``; returns the run folders still pending (empty when all finished).

    Args:
        metrics: the registry each run measures from (:func:`neural.train`); it must pickle (module-level
            functions do) for ``'process'`` and ``'submitit'``.
        executor: ``'local'`` (here, one after another), ``'process'`` (``workers`` spawned processes) or
            ``'submitit'`` (one job array through ``submitit.AutoExecutor`` in ``jobs_dir``).
        cluster: submitit's cluster (``None``: SLURM when available, else local; ``'local'``, ``'slurm'``,
            ``'debug'``).
        slurm: parameters for ``update_parameters`` (e.g. ``{'timeout_min': 600, 'gpus_per_node': 1}``).
        wait: with submitit, wait for the array (else return the pending runs at once).
        processes: data-parallel processes per run (:func:`train_task`; on a GPU node one per GPU, with
            ``slurm={'gpus_per_node': processes, ...}``); the config's batch is the global batch.
    """
    processes = integer(processes, "processes", 1)
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {EXECUTORS}, got {executor!r}")
    tasks = [(as_config(c).to_dict(), str(d)) for c, d in tasks]
    if executor == "local":
        for c, d in progress_bar(tasks, enabled=progress, desc="runs", unit="run"):
            train_task(c, d, metrics, processes)
        return []
    if executor == "process":
        workers = integer(workers, "workers", 1)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(train_task, c, d, metrics, processes) for c, d in tasks]
            for f in progress_bar(as_completed(futures), enabled=progress, desc="runs", unit="run",
                                  total=len(futures)):
                f.result()
        return []
    if jobs_dir is None:
        raise ValueError("jobs_dir: the submitit executor needs a folder for its jobs")
    return _submitit(tasks, metrics, processes, Path(jobs_dir), cluster, slurm, wait)


def _submitit(tasks: list, metrics, processes: int, jobs_dir: Path, cluster, slurm, wait: bool) -> list[str]:
    """The submitit path of :func:`run_tasks`: submit the runs neither finished nor waiting, as one array."""
    try:
        import submitit
    except ImportError as e:
        raise ImportError("executor 'submitit' needs submitit: pip install 'memgen[cluster]'") from e
    ex = submitit.AutoExecutor(folder=jobs_dir, cluster=cluster)
    if slurm:
        ex.update_parameters(**slurm)
    known = read_json(jobs_dir / JOBS_FILE) if (jobs_dir / JOBS_FILE).is_file() else {}
    queued = {d for d, job_id in known.items() if _waiting(ex, job_id)}
    missing = [(c, d) for c, d in tasks if not finished(c, d) and d not in queued]
    if missing:
        array = ex.map_array(train_task, [c for c, _ in missing], [d for _, d in missing],
                             [metrics] * len(missing), [processes] * len(missing))
        known.update({d: job.job_id for (_, d), job in zip(missing, array)})
        atomic_write_json(jobs_dir / JOBS_FILE, known)
        if wait:
            for job in array:
                job.result()                  # a failed run raises here, with its job's log
    if wait:
        for d in queued:
            _wait_for(ex, known[d])
    return [d for c, d in tasks if not finished(c, d)]


def _slurm_job(ex, job_id: str):
    import submitit

    return submitit.SlurmJob(folder=ex.folder, job_id=job_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):     # gone, or another user's process holds the id now
        return False
    return True


def _waiting(ex, job_id: str) -> bool:
    """Whether the job ``job_id`` may still finish its run: queued or running on SLURM; on the local cluster,
    its process (the job id) is alive and has not written its result. A job the cluster no longer knows is not
    waiting."""
    if ex.cluster == "slurm":
        return _slurm_job(ex, job_id).state in WAITING
    done = any(Path(ex.folder).glob(f"{job_id}_*_result.pkl"))     # written by the job as it ends, even failed
    return ex.cluster == "local" and not done and _alive(int(job_id))


def _wait_for(ex, job_id: str) -> None:
    """Block until a job submitted by an earlier call ends."""
    while _waiting(ex, job_id):
        time.sleep(1.0)
