"""Data sets and their splits. ``load(name, **kwargs)`` builds any registered data set by name."""
from __future__ import annotations

from .dataset import Dataset
from .split import Split, alternating_split, first_split, random_split
from .toy import circle, gaussian, gmm

LOADERS = {"circle": circle, "gaussian": gaussian, "gmm": gmm}


def load(name: str, **kwargs) -> Dataset:
    """Build the data set ``name`` (one of ``memgen.data.LOADERS``) with the loader's keyword arguments."""
    if name not in LOADERS:
        raise ValueError(f"data set {name!r} is unknown; expected one of {sorted(LOADERS)}")
    return LOADERS[name](**kwargs)


__all__ = ["Dataset", "Split", "LOADERS", "load", "circle", "gaussian", "gmm",
           "random_split", "first_split", "alternating_split"]
