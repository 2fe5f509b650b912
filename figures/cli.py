"""The command line every figure script shares: ``python -m figures.NAME --out DIR --seed S [...]``."""
from __future__ import annotations

import argparse


def figure_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """A parser with ``--out`` (default ``figures-out/NAME``) and ``--seed`` (default 0); add the rest."""
    p = argparse.ArgumentParser(prog=f"python -m figures.{name}", description=doc.splitlines()[0])
    p.add_argument("--out", default=f"figures-out/{name}", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    return p
