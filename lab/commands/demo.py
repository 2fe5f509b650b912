"""``memgen demo``: the optimal and the error-prone denoiser side by side on the 20-point circle.

What it writes into ``--out`` (figures, summary, record): :mod:`figures.circle_demo`, whose docstring is the
command's ``--help``. It prints the summary
table (per model: the fraction of samples within 1% of the radius of a training point, the mean
nearest-training-point distance) and the fitted gap peak of each smoothing width.
"""
from __future__ import annotations

import argparse
import time

from figures import circle_demo
from memgen.checks import out_folder


def format_table(rows: list[dict]) -> str:
    lines = [f"{'model':<24} {'near (<1% R)':>13} {'mean NN dist':>13}"]
    lines += [f"{r['model']:<24} {r['near_fraction']:>13.3f} {r['mean_nn_distance']:>13.4f}" for r in rows]
    return "\n".join(lines)


def _main(args) -> int:
    t0 = time.perf_counter()
    rows, panels = circle_demo.run_demo(args.out, seed=args.seed, samples=args.samples, steps=args.steps, delta=args.delta)
    print(format_table(rows))
    for d, v in panels["gap_peaks"].items():
        print(f"gap of the smoothed denoiser, delta = {d}: peaks at sigma = {v['sigma_peak']:.3g}"
              f" [{v['sigma_peak_lo']:.3g}, {v['sigma_peak_hi']:.3g}], G = {v['gap_peak']:.3f}"
              f" [{v['gap_peak_lo']:.3f}, {v['gap_peak_hi']:.3f}] (fitted peak, 95% bootstrap intervals)")
    print(f"wrote {args.out}/ in {time.perf_counter() - t0:.1f} s")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="optimal vs error-prone denoiser on the 20-point circle",
                              description=circle_demo.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=out_folder, default="memgen-out", help="output folder (default: memgen-out)")
    p.add_argument("--seed", type=int, default=circle_demo.DEFAULTS["seed"], help="seed of the sampling noise")
    p.add_argument("--samples", type=int, default=circle_demo.DEFAULTS["samples"], help="samples per model")
    p.add_argument("--steps", type=int, default=circle_demo.DEFAULTS["steps"], help="Heun steps on the EDM grid")
    p.add_argument("--delta", type=float, default=circle_demo.DEFAULTS["delta"], help="smoothing width of the error-prone model")
    p.set_defaults(run=_main)
