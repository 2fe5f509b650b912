"""The command-line arguments every figure script shares: ``python -m figures.NAME --out DIR --seed S [...]``."""
from __future__ import annotations

import argparse

from memgen.checks import out_folder


def figure_parser(name: str, doc: str, scales=None) -> argparse.ArgumentParser:
    """A parser with ``--out`` (default ``figures-out/NAME``), ``--seed`` (default 0) and, when the figure
    has named ``scales``, ``--scale`` (default ``cpu``: minutes on 2 cores; ``paper``: a GPU); add the rest."""
    p = argparse.ArgumentParser(prog=f"python -m figures.{name}", description=doc.splitlines()[0])
    p.add_argument("--out", type=out_folder, default=f"figures-out/{name}", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    if scales is not None:
        p.add_argument("--scale", choices=sorted(scales), default="cpu",
                       help="run sizes: cpu (this machine, minutes) or paper (the papers' sizes, a GPU)")
    return p
