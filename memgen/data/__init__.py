"""Data sets and their splits. ``load(name, **kwargs)`` builds any registered data set by name."""
from __future__ import annotations

from .cifar import cifar10
from .dataset import Dataset
from .digits import digits
from .files import from_array, image_folder
from .images import gm_dummies, mixture, mondrian, mondrian_bar_width, random_ink
from .split import Split, alternating_split, first_split, random_split, seeded_split
from .toy import circle, gaussian, gmm

LOADERS = {"circle": circle, "gaussian": gaussian, "gmm": gmm, "mondrian": mondrian, "gm_dummies": gm_dummies,
           "random_ink": random_ink, "mixture": mixture, "cifar10": cifar10, "from_array": from_array,
           "image_folder": image_folder, "digits": digits}


def load(name: str, **kwargs) -> Dataset:
    """Build the data set ``name`` (one of ``memgen.data.LOADERS``) with the loader's keyword arguments."""
    if name not in LOADERS:
        raise ValueError(f"name: data set {name!r} is unknown; expected one of {sorted(LOADERS)}")
    return LOADERS[name](**kwargs)


__all__ = ["Dataset", "Split", "LOADERS", "load", "circle", "gaussian", "gmm",
           "random_split", "first_split", "alternating_split", "seeded_split",
           "mondrian", "mondrian_bar_width", "gm_dummies", "random_ink", "mixture", "cifar10", "from_array",
           "image_folder", "digits"]
