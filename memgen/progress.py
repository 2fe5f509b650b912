"""Progress bars that show only where someone watches: on a terminal or in a notebook, never in a log file.

:func:`progress_bar` is :class:`tqdm.auto.tqdm` (rate and ETA; a widget in Jupyter) with one rule for
when to draw: when ``enabled`` and standard error is a terminal, or inside an IPython kernel. A job whose
standard error goes to a file or a pipe (a batch system, CI, ``2> log``) gets no bar, so its log holds
only what the program prints.
"""
from __future__ import annotations

import sys


def shows_progress() -> bool:
    """Whether a bar would be seen: standard error is a terminal, or the code runs in an IPython kernel."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty()) or "ipykernel" in sys.modules


def progress_bar(iterable=None, *, enabled: bool = True, **tqdm_kw):
    """``tqdm(iterable, **tqdm_kw)``, disabled unless ``enabled`` and :func:`shows_progress`.

    The disabled bar still iterates and accepts ``update``/``set_postfix``/``close``, so callers need no branch.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not (enabled and shows_progress()), **tqdm_kw)
