"""Checkpoints of a run folder: the log-spaced grid, the resumable ``latest``, and loading a denoiser back.

A run folder holds::

    config.toml       the resolved config          record.json   seed, data split, versions, sizes
    metrics.jsonl     one JSON row per checkpoint  latest.pt     everything needed to resume
    checkpoints/step_000000100.pt ...              model and EMA weights at each grid step
    .lock             held by the trainer writing the folder (:mod:`neural.rundir`)

Every file is written atomically (:mod:`memgen.run_files`), so a killed run leaves the previous version.
"""
from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import torch

from memgen.checks import integer
from memgen.run_files import atomic_torch_save, atomic_write_text, metrics_path, read_jsonl

from .config import Config
from .ddp import pick_device
from .presets import model_from_config

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"
MODEL_KEYS = ("step", "config", "shape", "num_classes", "model", "ema")
"""Keys of every checkpoint (grid checkpoints hold the weights only)."""
RESUME_KEYS = MODEL_KEYS + ("optimizer", "images_seen", "elapsed", "loss_sum", "loss_count")
"""Keys of ``latest.pt``: also everything needed to resume (optimizer state, counters)."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, corrupt, not a memgen checkpoint, or holding code."""


def checkpoint_steps(steps: int, *, per_decade: int = 8, first: int = 10) -> list[int]:
    """The log-spaced grid ``round(first * 10^(k / per_decade))`` for k = 0, 1, ... up to ``steps``, plus ``steps``.

    The grid does not depend on ``steps`` below it, so a run extended to more steps keeps its checkpoints.
    """
    steps, per_decade, first = integer(steps, "steps"), integer(per_decade, "per_decade"), integer(first, "first")
    out, k = set(), 0
    while True:
        s = int(round(first * 10 ** (k / per_decade)))
        if s > steps:
            break
        out.add(s)
        k += 1
    out.add(int(steps))
    return sorted(out)


def step_path(run_dir, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{int(step):09d}.pt"


def save(path, state: dict) -> Path:
    """Write a checkpoint atomically."""
    return atomic_torch_save(state, path)


def load(path, map_location="cpu", *, require=MODEL_KEYS) -> dict:
    """Read a checkpoint: tensors, numbers, strings and containers only (``weights_only`` loading).

    Raises :class:`CheckpointError` naming the file when it is truncated or corrupt, lacks one of the
    keys ``require``, or holds pickled code (a reference to a function or class that unpickling would
    call); such a file is refused unread, never loaded with code execution.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():
            raise CheckpointError(f"{path}: corrupt checkpoint ({str(e).splitlines()[0]})") from None
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f"a reference to {found.group(1)}" if found else "pickled Python objects"
        raise CheckpointError(f"{path}: holds code ({what}, run when unpickled), not only tensors and "
                              "plain data; it was not loaded. Use only checkpoints that memgen wrote") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        reason = re.split(r"\.\s", str(e))[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt ({reason})") from e
    missing = [k for k in require if k not in state] if isinstance(state, dict) else list(require)
    if missing:
        raise CheckpointError(f"{path}: not a memgen checkpoint (no {', '.join(missing)})")
    return state


def _first_line(e: Exception) -> str:
    """The first line of an error that says something (torch's load errors start with a heading)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return (lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]) if lines else type(e).__name__


def load_weights(module: torch.nn.Module, weights, path, what: str = "model") -> None:
    """``module.load_state_dict(weights)``; weights that do not fit the network (a tampered or foreign
    file) raise :class:`CheckpointError` naming ``path`` and the first mismatch."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: its {what} weights do not fit the network of its config "
                              f"({_first_line(e)})") from None


def load_optimizer(opt: torch.optim.Optimizer, state, path) -> None:
    """``opt.load_state_dict(state)``, refusing with :class:`CheckpointError` naming ``path`` a state whose
    groups or tensors do not fit the parameters (torch would fail only at the next step)."""
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its optimizer state does not fit the network ({_first_line(e)})") from None
    for group in opt.param_groups:
        for p in group["params"]:
            for name, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.ndim and v.shape != p.shape:
                    raise CheckpointError(f"{path}: its optimizer state {name!r} has shape {tuple(v.shape)}, "
                                          f"its parameter {tuple(p.shape)}")


def list_checkpoints(run_dir) -> list[tuple[int, Path]]:
    """``(step, path)`` of the grid checkpoints of a run, by step."""
    found = []
    for p in (Path(run_dir) / CHECKPOINT_DIR).glob("step_*.pt"):
        m = re.fullmatch(r"step_(\d+)\.pt", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_denoiser(run_dir, step: int | None = None, *, ema: bool = True, device="cpu"):
    """The denoiser of a run at grid ``step`` (default: the latest state), EMA weights by default, in eval mode.

    ``run_dir`` may also be the path of one checkpoint file. A ``device`` this machine lacks raises a
    ValueError naming the available ones (:func:`neural.ddp.pick_device`).
    """
    device = pick_device(str(device), key="device")
    path = Path(run_dir)
    if path.is_dir():
        path = path / LATEST if step is None else step_path(path, step)
    if not path.exists():
        raise ValueError(f"step: no checkpoint at {path}")
    state = load(path, map_location=device)
    config = Config.from_dict(state["config"])
    model = model_from_config(config.model, tuple(state["shape"]), state["num_classes"])
    load_weights(model, state["ema" if ema else "model"], path, "EMA" if ema else "model")
    return model.to(device).eval().requires_grad_(False)


def read_metrics(run_dir_or_file) -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (or of the given JSONL file), in order."""
    path = metrics_path(run_dir_or_file)
    return read_jsonl(path, require=("step",)) if path.exists() else []


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_metrics(path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON lines, atomically (NaN and inf are written as null)."""
    return atomic_write_text(path, "".join(json.dumps(_finite(r), sort_keys=True) + "\n" for r in rows))


def append_metrics(path, row: dict) -> Path:
    """Append one row (the whole file is rewritten atomically; metric files are small)."""
    return write_metrics(path, read_metrics(path) + [row])
