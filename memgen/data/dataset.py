"""The data-set record every loader returns: all points, labels, the split, and how it was made."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .split import Split


@dataclass
class Dataset:
    """``x`` ``[N, *shape]`` (float32), optional integer ``labels`` ``[N]``, and the ``split`` into train/val.

    ``params`` holds what is needed to rebuild it (loader name and arguments); ``truth`` holds the
    exact generating distribution where one is known (e.g. ``{'weights', 'means', 'covs'}`` of a mixture).
    """

    name: str
    x: torch.Tensor
    split: Split
    labels: torch.Tensor | None = None
    classes: list[str] | None = None
    params: dict = field(default_factory=dict)
    truth: dict | None = None

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or self.x.dim() < 2 or len(self.x) == 0:
            raise ValueError(f"x: expected a non-empty tensor [N, *shape], got {getattr(self.x, 'shape', self.x)!r}")
        n = len(self.x)
        for name in ("train", "val"):
            idx = getattr(self.split, name)
            if idx.size and idx.max() >= n:
                raise ValueError(f"split: {name} index {int(idx.max())} is out of range for {n} points")
        if self.labels is not None and tuple(self.labels.shape) != (n,):
            raise ValueError(f"labels: expected shape ({n},), got {tuple(self.labels.shape)}")

    @property
    def train(self) -> torch.Tensor:
        return self.x[torch.as_tensor(self.split.train)]

    @property
    def val(self) -> torch.Tensor:
        return self.x[torch.as_tensor(self.split.val)]

    @property
    def train_labels(self) -> torch.Tensor | None:
        return None if self.labels is None else self.labels[torch.as_tensor(self.split.train)]

    @property
    def val_labels(self) -> torch.Tensor | None:
        return None if self.labels is None else self.labels[torch.as_tensor(self.split.val)]

    @property
    def shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    def describe(self) -> dict:
        """What a run records about its data: name, loader arguments and the split indices."""
        return {"name": self.name, "params": self.params, "shape": list(self.shape), "split": self.split.to_dict()}
