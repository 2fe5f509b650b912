"""``memgen report``: run the claims, judge them by their stated criteria, and write one report.

``memgen report --out DIR [--scale quick|cpu|paper] [--only 2,5,9] [--seeds 3] [--jobs 2] [--executor submitit
[--cluster slurm] [--slurm timeout_min=600,gpus_per_node=1] [--wait]] [--cifar10 ROOT]``; what it writes and reuses, and how
runs on a cluster are submitted and collected: :mod:`lab.claims.report`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lab.claims.report import RunsPending, run_report
from memgen.checks import out_folder
from neural.config import parse_value


def _main(args) -> int:
    try:
        rows = run_report(args.out, scale=args.scale, only=args.only, seeds=args.seeds, jobs=args.jobs,
                          executor=args.executor, cluster=args.cluster, slurm=args.slurm, wait=args.wait,
                          processes=args.processes_per_run, cifar10=args.cifar10)
    except RunsPending as e:
        print(f"memgen report: {e}")
        return 0
    for r in rows:
        print(f"claim {r['claim']:2d} ({r['paper']}): {r['verdict']:17s} {r['our_value']}  [{r['seconds']} s]")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="run the papers' claims and write a report with computed verdicts",
                              description=__doc__.splitlines()[0])
    p.add_argument("--out", type=out_folder, required=True,
                   help="output folder (reused: finished claims and runs are kept)")
    p.add_argument("--scale", choices=("quick", "cpu", "paper"), default="quick",
                   help="quick: CI, minutes; cpu: a 2-core machine, hours; paper: a GPU")
    p.add_argument("--only", default=None, help="comma-separated claim numbers, e.g. 2,5,9 (default: all twelve)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per claim (default 1 at quick, 3 otherwise)")
    p.add_argument("--jobs", type=int, default=1,
                   help="trained runs, then claims, side by side in this many processes of one thread each "
                        "(default 1: everything here)")
    p.add_argument("--executor", choices=("process", "submitit"), default=None,
                   help="where trained runs train: process (--jobs local processes) or submitit (one job array; "
                        "default at --scale paper)")
    p.add_argument("--cluster", choices=("slurm", "local", "debug"), default=None,
                   help="submitit's cluster (default: SLURM where available, else local)")
    p.add_argument("--slurm", type=slurm_parameters, default=None, metavar="KEY=VALUE,...",
                   help="submitit parameters, e.g. timeout_min=600,gpus_per_node=1,slurm_partition=gpu")
    p.add_argument("--processes-per-run", type=int, default=1, metavar="N",
                   help="train each run data-parallel in N processes (a multi-GPU node: one per GPU, with "
                        "--slurm gpus_per_node=N); the run's batch is the global batch")
    p.add_argument("--cifar10", default=None, metavar="ROOT",
                   help="your local copy of CIFAR-10 (the folder of its archives; claims 11 and 12 need it at "
                        "--scale paper; nothing is downloaded)")
    p.add_argument("--wait", action="store_true",
                   help="with submitit, wait for the job array (default: submit and return; run again later)")
    p.set_defaults(run=_main)


def slurm_parameters(text: str) -> dict:
    """``'timeout_min=600,slurm_partition=gpu'`` -> ``{'timeout_min': 600, 'slurm_partition': 'gpu'}`` (each value
    read as ``memgen sweep --slurm`` reads it, :func:`neural.config.parse_value`: numbers as numbers)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE,..., got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out
