"""``memgen report``: run the claims, judge them by their stated criteria, and write one report.

``memgen report --out DIR [--scale quick|cpu|paper] [--only 2,5,9] [--seeds 3] [--jobs 2]``; what it writes
and reuses: :mod:`lab.claims.report`.
"""
from __future__ import annotations

from pathlib import Path

from lab.claims.report import run_report
from memgen.checks import out_folder


def _main(args) -> int:
    rows = run_report(args.out, scale=args.scale, only=args.only, seeds=args.seeds, jobs=args.jobs)
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
    p.set_defaults(run=_main)
