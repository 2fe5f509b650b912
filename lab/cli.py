"""The ``memgen`` command line (``python -m lab``): one sub-command per job, each registered by its module in
:mod:`lab.commands`.

A command module defines ``register(subparsers)``, which adds its parser and sets ``run=function``
(``function(args) -> int``). Modules keep heavy imports inside their run functions so that
``memgen --help`` stays fast.

Settings ``section.key=value`` may stand anywhere on the line (before or after options); a word of
that form is a setting unless it is the value of the option written just before it
(``--grid data.subset=64,128``). A mistake of the user (a bad setting or argument, a missing file,
a folder in use) prints one line, ``memgen: error: ...``, and exits with status 2; ``--debug`` shows
the traceback instead.
"""
from __future__ import annotations

import argparse
import re
import sys

from memgen import __version__

from .commands import audit, demo, report, rf, train

COMMAND_MODULES = (demo, train, rf, audit, report)
"""The command modules, in the order ``memgen --help`` lists their commands."""

USER_ERRORS = (ValueError, TypeError, OSError, ImportError)
"""Exceptions reported as one line (bad settings and arguments, missing or unreadable files, folders in
use, a missing optional package); anything else is a bug and keeps its traceback."""

_SETTING = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)+=")
_OPTION = re.compile(r"--?[A-Za-z][\w-]*")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memgen", description="memgen: memorization and generalization of diffusion models, one sub-command per job.")
    parser.add_argument("--version", action="version", version=f"memgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (may stand anywhere)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def split_settings(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` -> (the other words, the ``section.key=value`` settings in order), see the module docstring."""
    rest, settings = [], []
    for i, word in enumerate(argv):
        if "--" in argv[:i]:
            rest.append(word)
        elif _SETTING.match(word) and not (i > 0 and _OPTION.fullmatch(argv[i - 1])):
            settings.append(word)
        else:
            rest.append(word)
    return rest, settings


def parse_args(argv=None) -> argparse.Namespace:
    """Parse a command line; the settings go to ``args.overrides`` of the commands that take them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    rest, settings = split_settings([a for a in argv if a != "--debug"])
    parser = build_parser()
    args = parser.parse_args(rest)
    if settings:
        if not hasattr(args, "overrides"):
            parser.error(f"memgen {args.command} takes no section.key=value settings: {' '.join(settings)}")
        args.overrides = list(args.overrides) + settings
    args.debug = debug
    return args


def error_line(e: BaseException) -> str:
    """One line saying what went wrong, for a user error."""
    if isinstance(e, FileExistsError) and e.filename:
        return f"{e.filename}: exists and is not a folder; give a folder (or a new name)"
    if isinstance(e, NotADirectoryError) and e.filename:
        return f"{e.filename}: a part of this path is a file, not a folder"
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("memgen: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"memgen: error: {error_line(e)}", file=sys.stderr)
        return 2
