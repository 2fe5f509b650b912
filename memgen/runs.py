"""Nothing is lost: atomic writes, and the record (config, seed, split, versions) kept beside results.

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


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created; permissions follow the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())            # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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


def read_jsonl(path) -> list[dict]:
    """The rows of a JSON-lines file (one JSON object per line, blank lines skipped), in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


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


def write_record(folder, **fields) -> Path:
    """Write ``record.json`` (the given fields plus ``versions``) into ``folder``; returns its path."""
    return atomic_write_json(Path(folder) / "record.json", {**fields, "versions": versions()})
