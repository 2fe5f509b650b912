"""Train/validation splits: deterministic from a seed, disjoint, and stored with every run."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memgen.checks import integer


@dataclass(frozen=True)
class Split:
    """Indices of the training and validation points of a data set (disjoint)."""

    train: np.ndarray
    val: np.ndarray
    method: str
    seed: int | None = None

    def __post_init__(self):
        for name in ("train", "val"):
            idx = getattr(self, name)
            if not isinstance(idx, np.ndarray) or idx.ndim != 1 or (idx.size and (idx.dtype.kind not in "iu"
                                                                                   or idx.min() < 0)):
                raise ValueError(f"{name}: expected a 1-D array of non-negative integer indices")
        if np.intersect1d(self.train, self.val).size:
            raise ValueError("split: train and validation indices overlap")

    def to_dict(self) -> dict:
        return {"train": self.train.tolist(), "val": self.val.tolist(), "method": self.method, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "Split":
        return cls(np.asarray(d["train"], dtype=np.int64), np.asarray(d["val"], dtype=np.int64), d["method"], d.get("seed"))


def split_counts(n: int, n_train: int, seed: int = 0) -> int:
    """Check a split's sizes: ``n >= 1`` points, an integer ``n_train`` in [1, n], a seed >= 0; returns ``n_train``."""
    n = integer(n, "n")
    n_train = integer(n_train, "n_train")
    if n_train > n:
        raise ValueError(f"n_train: must lie in [1, {n}], got {n_train}")
    integer(seed, "seed", 0)
    return n_train


def random_split(n: int, n_train: int, seed: int = 0) -> Split:
    """A seeded random permutation: its first ``n_train`` indices train, the rest validate (both sorted)."""
    n_train = split_counts(n, n_train, seed)
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    return Split(np.sort(perm[:n_train]), np.sort(perm[n_train:]), "random", int(seed))


def seeded_split(n: int, n_train: int | None = None, seed: int = 0) -> Split:
    """``random_split(n, n_train, seed)``; ``n_train=None`` trains on all ``n`` points (empty validation)."""
    return random_split(n, integer(n, "n") if n_train is None else n_train, seed)


def first_split(n: int, n_train: int) -> Split:
    """The first ``n_train`` points train, the rest validate."""
    n_train = split_counts(n, n_train)
    return Split(np.arange(n_train), np.arange(n_train, int(n)), "first")


def alternating_split(n: int) -> Split:
    """Even indices train, odd indices validate (the circle toy's split)."""
    n = integer(n, "n")
    return Split(np.arange(0, n, 2), np.arange(1, n, 2), "alternating")
