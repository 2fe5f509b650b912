"""The ``memgen`` command line: one sub-command per job, each registered by the module that owns it.

A command module defines ``register(subparsers)``, which adds its parser and sets ``run=function``
(``function(args) -> int``). Modules keep heavy imports inside their run functions so that
``memgen --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("figures.demo", "neural.cli", "toymodels.rf_cli", "figures.claims.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memgen", description="memgen: memorization and generalization of diffusion models, one sub-command per job.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
