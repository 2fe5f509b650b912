"""scikit-learn's handwritten digits (1,797 images of 8x8, classes 0-9) as a data set: real data, no download.

The images ship inside the scikit-learn wheel (``sklearn.datasets.load_digits``, imported when the
data set is built; install the ``digits`` extra). Pixel values are integers in ``0..16``, stored as
``2 v / 16 - 1``: float32 in [-1, 1], shape ``[N, 1, 8, 8]``, with the digit as label.
"""
from __future__ import annotations

import numpy as np
import torch

from memgen.checks import integer

from .dataset import Dataset
from .split import seeded_split

N_DIGITS = 1797
"""Images in scikit-learn's copy of the UCI optical-digits test set."""


def digits(n: int | None = None, *, n_train: int | None = None, seed: int = 0, classes=None) -> Dataset:
    """The first ``n`` images (default all) of scikit-learn's digits, optionally only the digits in ``classes``.

    ``n_train=None`` trains on every image (empty validation set); otherwise a seeded split
    (:func:`memgen.data.seeded_split`) keeps ``n_train`` for training and the rest for validation.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("digits: needs scikit-learn (pip install 'memgen[digits]')") from e
    bunch = load_digits()
    x, y = np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
    if classes is not None:
        keep = np.asarray(sorted({int(c) for c in classes}))
        if keep.size == 0 or keep.min() < 0 or keep.max() > 9:
            raise ValueError(f"classes: expected digits in 0..9, got {classes!r}")
        sel = np.isin(y, keep)
        x, y = x[sel], y[sel]
    n = len(x) if n is None else integer(n, "n")
    if n > len(x):
        raise ValueError(f"n: only {len(x)} images available, got {n}")
    x, y = x[:n], y[:n]
    images = torch.as_tensor((2 * x / 16 - 1).astype(np.float32)).reshape(n, 1, 8, 8)
    return Dataset("digits", images, seeded_split(n, n_train, seed), labels=torch.as_tensor(y),
                   classes=[str(c) for c in range(10)],
                   params={"n": n, "n_train": n_train, "seed": seed,
                           "classes": None if classes is None else sorted({int(c) for c in classes})})
