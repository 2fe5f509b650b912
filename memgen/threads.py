"""CPU threads for a block of work (a run's ``train.threads``, honoured by training and measurement alike)."""
from __future__ import annotations

from contextlib import contextmanager

import numba
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


@numba.njit(parallel=True, cache=True)
def _first_parallel_region(n):
    total = 0
    for i in numba.prange(n):
        total += i
    return total


def _launch_numba_threads() -> None:
    """Run numba's first parallel region now, keeping torch's CPU thread count.

    numba's OpenMP threading layer shares libgomp with torch, and its first parallel region sets the process's
    OpenMP thread count to numba's (all cores): a run on ``train.threads = 1`` went on with two threads after
    its first measured checkpoint, so the first run in a process trained differently (by ulps, and slower on
    shared cores) from the same run started later. Measured on 2 cores beside one busy process: 1,600 steps of
    ``mlp-small`` on 128 digits (batch 16) with 22 measured checkpoints took 183 s after the reset (two threads,
    one of them waiting for the busy core at every region), 16 s on one thread. Done once, at import, before
    any kernel of memgen's."""
    threads = torch.get_num_threads()
    _first_parallel_region(2)
    torch.set_num_threads(threads)


_launch_numba_threads()


SHORT_WORK = 2 ** 24
"""Elements (about 5 ms on one core) below which a parallel loop is better run on one thread: on a machine
whose cores are shared, a region's second thread may wait a whole scheduler time slice (3 ms or more)
for its core, and every region waits for its last thread. Measured on 2 cores beside one busy process:
the float64 distances of 3,000 pairs at d = 3072 (9.2e6 elements) took 12.9 ms on 2 threads, 3.1 ms on
one (1.6 ms and 2.5 ms on the quiet machine)."""


@contextmanager
def numba_like_torch(chunk: int = 0, work: int | None = None):
    """Run numba's parallel loops of the block on as many threads as torch's CPU setting (at most numba's
    pool), restoring numba's setting after it, so that a fused kernel between two GEMMs uses the threads
    the GEMMs do (:func:`cpu_threads` included). ``chunk > 0`` hands out ``prange`` iterations that many at
    a time (dynamic): a thread that shares its core with another process then takes fewer of them.
    ``work``: the elements the loops touch; below :data:`SHORT_WORK` they run on one thread."""
    before = numba.get_num_threads()
    threads = 1 if work is not None and work < SHORT_WORK else torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        with numba.parallel_chunksize(chunk):
            yield
    finally:
        numba.set_num_threads(before)
