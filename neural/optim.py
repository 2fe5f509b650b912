"""The optimizers by the name ``train.optimizer`` gives, each built from the run's ``[train]`` settings.

* ``adam``: Adam with ``lr``, ``betas`` and (L2) ``weight_decay``;
* ``sgd``: SGD with ``lr``, heavy-ball ``momentum`` and ``weight_decay``.
"""
from __future__ import annotations

import torch


def adam(params, train) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=train.lr, betas=tuple(train.betas), weight_decay=train.weight_decay)


def sgd(params, train) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


OPTIMIZERS = {"adam": adam, "sgd": sgd}
"""``OPTIMIZERS[name](params, train_config)``; validation reads the names."""
