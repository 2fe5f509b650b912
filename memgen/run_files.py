"""The files of a run, written so that nothing is lost: atomic writes, the record (config, seed, split,
versions) kept beside results, and the reading of a run's record and metrics files.

Named for what it handles (a run folder's files), not for runs themselves: training runs live in
:mod:`neural.rundir`, which writes through these functions, as do the figures and reports.

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a killed process leaves either the old
file or the new one, never half of one.
"""
from __future__ import annotations

import io
import json
import os
import platform
import sys
import tempfile
from pathlib import Path


METRICS_FILE = "metrics.jsonl"
"""Name of a run's metrics file: one JSON object per line, appended checkpoint by checkpoint."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _named(e: OSError, path: Path) -> OSError:
    """``e`` naming ``path`` when it names no file (a full disk: ENOSPC from ``write`` or ``fsync``)."""
    if e.filename is None:
        e.filename = str(path)
    return e


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created; permissions follow the umask).

    An OSError (a full disk, a read-only folder) names ``path``; the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _named(e, path)
    try:
        os.fchmod(fd, 0o666 & ~_umask())            # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        raise _named(e, path) if isinstance(e, OSError) else e
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def atomic_save_figure(fig, path, **kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the suffix of ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` atomically (checkpoints)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def metrics_path(run_or_file) -> Path:
    """A run folder's ``metrics.jsonl``, or the given file itself."""
    path = Path(run_or_file)
    return path / METRICS_FILE if path.is_dir() else path


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); the file is damaged") from None


def _parse_json(text: str, path: Path, line: int = 0):
    """``json.loads(text)``; damaged JSON raises a ValueError naming ``path`` and the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {line or e.lineno} is not valid JSON ({e.msg}, column {e.colno}); "
                         "the file is damaged") from None


def read_json(path):
    """A JSON file (``record.json``, ``summary.json``); a damaged one raises a ValueError naming it and the line."""
    path = Path(path)
    return _parse_json(_read_text(path), path)


def read_jsonl(path, require: tuple = ()) -> list[dict]:
    """The rows of a JSON-lines file (one JSON object per line, blank lines skipped), in order.

    A line that is not a JSON object (holding the keys ``require``) raises a ValueError naming the file
    and the line.
    """
    path, rows = Path(path), []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            row = _parse_json(line, path, number)
            if not isinstance(row, dict) or any(k not in row for k in require):
                keys = f" with the keys {', '.join(require)}" if require else ""
                raise ValueError(f"{path}: line {number} is not a JSON object{keys}; the file is damaged")
            rows.append(row)
    return rows


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot record {type(o).__name__} as JSON")


def versions() -> dict:
    """Versions of Python, the platform and the numerical packages, recorded with every run."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("memgen", "numpy", "scipy", "torch", "numba", "sympy", "matplotlib"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "unknown")
        except ImportError:
            out[name] = None
    return out


RECORD_FILE = "record.json"


def write_record(folder, **fields) -> Path:
    """Write ``record.json`` (the given fields plus ``versions``) into ``folder``; returns its path."""
    return atomic_write_json(Path(folder) / RECORD_FILE, {**fields, "versions": versions()})


def read_record(folder) -> dict:
    """The ``record.json`` of ``folder`` (:func:`read_json`: a damaged one is named with its line)."""
    record = read_json(Path(folder) / RECORD_FILE)
    if not isinstance(record, dict):
        raise ValueError(f"{Path(folder) / RECORD_FILE}: expected a JSON object, got {type(record).__name__}")
    return record


def recorded_train_index(record: dict, n: int, folder) -> list[int]:
    """The ``train_index`` of ``record`` (the :func:`read_record` of ``folder``): a non-empty list of distinct
    integers in ``[0, n)`` (``n``: the data set's points), else refused naming the file."""
    file = Path(folder) / RECORD_FILE
    idx = record.get("train_index")
    if not isinstance(idx, list) or not idx or any(isinstance(i, bool) or not isinstance(i, int) for i in idx):
        raise ValueError(f"{file}: train_index must be a non-empty list of integers, got {str(idx)[:60]}")
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(f"{file}: train_index holds {bad[0]}, outside [0, {n - 1}] (the data set has {n} points)")
    if len(set(idx)) != len(idx):
        raise ValueError(f"{file}: train_index repeats indices; the file is damaged")
    return idx
