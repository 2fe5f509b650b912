"""CPU threads for a block of work (a run's ``train.threads``, honoured by training and measurement alike)."""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(n: int):
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), restoring the setting after it.

    A tiny network is far slower on 2 threads than on 1 when the cores are shared, so a figure measures
    with the threads its training used (``train.threads``)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
