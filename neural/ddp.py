"""Data-parallel training across processes and nodes, launched by ``torchrun``.

``torchrun --nproc_per_node=G [--nnodes=N --node_rank=R --rdzv_endpoint=HOST:PORT] -m lab train ...``
sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` then joins the process group (NCCL on
CUDA, gloo on CPU) and gives each process its device. Every process draws the randomness of the whole
global batch and uses its own contiguous slice, and DDP averages the gradients, so W processes with
global batch B compute what one process computes with batch B.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node, ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This process's contiguous slice of a global batch of ``n`` (``n`` divisible by ``world_size``)."""
        per = n // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


def available_devices() -> list[str]:
    """The devices this machine can train on: ``cpu``, then ``cuda:0`` ... and ``mps`` where present."""
    out = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    return out + (["mps"] if torch.backends.mps.is_available() else [])


def pick_device(spec: str = "auto", local_rank: int = 0, *, key: str = "train.device") -> torch.device:
    """``'auto'``: CUDA (this process's local GPU) when available, else CPU; otherwise the named device.

    A device this machine lacks (``cuda`` without a GPU, ``cuda:7`` with one, ``mps`` off a Mac) raises a
    ValueError naming ``key`` and :func:`available_devices`, before anything is allocated or written.
    """
    given = spec
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        spec = f"cuda:{local_rank}"
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        dev = None
    name = None if dev is None else dev.type if dev.type in ("cpu", "mps") else str(dev)
    if name not in available_devices():
        raise ValueError(f"{key}: {given!r} is not available on this machine; available: "
                         f"{', '.join(available_devices())} (or 'auto')")
    return dev


def setup(device: str = "auto") -> Context:
    """The process context; joins the process group when launched by torchrun with ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return Context(rank, world, local, dev, owns)


def mean_over_processes(value: float, ctx: Context) -> float:
    """The mean of a number over all processes (the number itself in a single process)."""
    if ctx.world_size == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t) / ctx.world_size


def teardown(ctx: Context) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
