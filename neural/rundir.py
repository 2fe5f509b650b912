"""The run folder around a training run: one trainer at a time, resumed only as what it was, nothing left behind.

:func:`open_run` is the context of a training run in ``run_dir`` (:func:`neural.train` runs inside it):

* **no links**: a run folder whose entries the trainer writes or deletes (:data:`RUN_ENTRIES`) holds no
  symbolic link, or the run is refused naming it: a link could make training write, truncate or delete
  files outside the folder (the lock file is also opened with ``O_NOFOLLOW``; orphans that are links
  are left alone).
* **lock**: an exclusive ``fcntl.flock`` on ``run_dir/.lock`` (holder's pid, host and start time written
  in it) for as long as the run is open. A second trainer on the folder is refused with
  :class:`RunFolderLocked` naming the holder. The kernel releases the lock when the holder exits, however
  it exits (also SIGKILL), so a stale lock file never blocks anyone. Under ``torchrun`` process 0 holds it.
* **orphans**: temporary files of atomic writes that a kill interrupted (``.NAME.XXXXXXXX.tmp``, see
  :mod:`memgen.run_files`, as large as a checkpoint) are removed once the lock is held.
* **resume check**: a folder holding ``latest.pt`` resumes from it (:attr:`RunFolder.state`) only if the
  run would go on as the same run: the effective config equals the checkpoint's in every setting but
  those of :data:`RESUMABLE`, and the training data hash to the checkpoint's ``data_sha256``
  (:func:`data_fingerprint`, checked by :meth:`RunFolder.check_data`). Otherwise a ValueError says which
  settings changed (``train.lr: 0.001 -> 0.5``) or that the training data changed. The config is checked
  against the checkpoint, not against ``config.toml``, so editing ``config.toml`` is caught too.
* **fresh start**: a folder without ``latest.pt`` is not pinned to any config: ``config.toml`` is
  (re)written and ``metrics.jsonl`` rows of an earlier start that never reached a checkpoint are dropped.
  If the run fails before writing its first ``latest.pt``, the files this start created are removed
  (and a ``config.toml`` it replaced is restored), so the corrected command starts cleanly.

Settings that may change on resume (:data:`RESUMABLE`): ``train.steps`` (train for longer or stop
earlier; the checkpoint grid does not depend on it), and the ones that change where and how fast the
same computation runs or what is shown, not what is computed: ``train.device``, ``train.threads``,
``train.compile``, ``train.progress``, ``train.save_every`` (how often ``latest.pt`` is rewritten).
Everything else (optimizer, loss, model, data, precision, checkpoint grid, measurement) is fixed for
the life of a run.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from memgen.run_files import METRICS_FILE, RECORD_FILE, atomic_write_bytes, atomic_write_text

from . import checkpoint as ckpt
from .config import Config, dump_toml

try:
    import fcntl
except ImportError:  # not POSIX (Windows): run folders are not locked
    fcntl = None

RESUMABLE = frozenset({"train.steps", "train.device", "train.threads", "train.compile", "train.progress",
                       "train.save_every"})
"""Settings that may differ between a run's checkpoint and the command that resumes it."""

LOCK_FILE = ".lock"
CONFIG_FILE = "config.toml"
_ORPHAN = re.compile(r"\..+\.\w{8}\.tmp")
RUN_ENTRIES = (LOCK_FILE, CONFIG_FILE, METRICS_FILE, RECORD_FILE, ckpt.LATEST, ckpt.CHECKPOINT_DIR)
"""The entries of a run folder that a trainer writes, truncates or deletes (none may be a symbolic link)."""


class RunFolderLocked(BlockingIOError):
    """Another process is training into this run folder."""


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(old: dict, new: dict) -> list[str]:
    """``'key: old -> new'`` for every dotted setting (``params`` tables included) that differs, except :data:`RESUMABLE`."""
    a, b = _flat(old), _flat(new)
    missing = "(unset)"
    return [f"{k}: {a.get(k, missing)!r} -> {b.get(k, missing)!r}" for k in sorted(set(a) | set(b))
            if k not in RESUMABLE and a.get(k, missing) != b.get(k, missing)]


def _as_current(saved: dict) -> dict:
    """A checkpoint's config with the settings added to memgen since it was written at their defaults."""
    try:
        return Config.from_dict(saved).to_dict()
    except (ValueError, TypeError):   # a setting since removed or changed: compare as saved, naming it
        return saved


def data_fingerprint(x, labels=None) -> str:
    """SHA-256 of the training data exactly as trained on: dtype, shape and bytes of ``x`` (and of ``labels``)."""
    h = hashlib.sha256()
    for t in (x, labels):
        if t is not None:
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())   # the bytes in place, any dtype
    return h.hexdigest()


class RunFolder:
    """An open run folder: ``path``, ``state`` (the checkpoint resumed from, on the CPU; ``None`` on a fresh
    start) and, after :meth:`check_data`, ``data_sha256`` (stored in every ``latest.pt``)."""

    def __init__(self, path: Path, state: dict | None):
        self.path, self.state, self.data_sha256 = path, state, None

    def check_data(self, x, labels=None) -> None:
        """Fingerprint the training data; refuse to resume a run that was trained on other data."""
        self.data_sha256 = data_fingerprint(x, labels)
        old = None if self.state is None else self.state.get("data_sha256")
        if old is not None and old != self.data_sha256:
            raise ValueError(f"run_dir: {self.path}: training data changed since its checkpoint (the data set "
                             "or its file differs, though the settings are the same); train into a new folder")


def refuse_links(path: Path) -> None:
    """Raise a ValueError naming the first entry of :data:`RUN_ENTRIES` in ``path`` that is a symbolic link."""
    for name in RUN_ENTRIES:
        entry = path / name
        if entry.is_symlink():
            raise ValueError(f"run_dir: {entry} is a symbolic link (to {os.readlink(entry)}); a trainer writes "
                             "only inside its run folder: replace the link by a real file or folder, or train "
                             "into a new folder")


def _lock(path: Path):
    """Take the folder's lock (an open file descriptor) or raise :class:`RunFolderLocked` naming the holder."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise RunFolderLocked(f"run_dir: {path} is in use by another trainer ({holder}); wait for it to "
                              "finish, stop it, or train into another folder") from None
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, started {started}\n".encode(), 0)
    return fd


def remove_orphans(path: Path) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in a run folder and its checkpoints; returns them.

    Symbolic links inside the run folder (to folders or files, possibly outside the run) are neither followed
    nor deleted; the run folder itself may be reached through a link (``runs/x -> /scratch/x``).
    """
    gone = []
    for folder in (path, path / ckpt.CHECKPOINT_DIR):
        if folder.is_dir() and (folder == path or not folder.is_symlink()):
            for p in folder.iterdir():
                if _ORPHAN.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                    p.unlink(missing_ok=True)
                    gone.append(p)
    return gone


def _roll_back(path: Path, created_dir: bool, before: set, old_config: bytes | None) -> None:
    """Remove what a fresh start that failed before its first checkpoint created; restore the config it replaced."""
    if created_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    for p in path.iterdir():
        if p.name in before or p.name == LOCK_FILE:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    if old_config is not None:
        atomic_write_bytes(path / CONFIG_FILE, old_config)


@contextmanager
def open_run(run_dir, cfg: Config, *, main: bool = True):
    """Open ``run_dir`` for training ``cfg`` (see the module docstring); yields a :class:`RunFolder`.

    ``main``: whether this process writes the run's files (process 0 under torchrun); the others only
    read the checkpoint and check it.
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"run_dir: {path} is a file; expected a run folder")
    created_dir = not path.exists()
    fd = None
    if path.is_dir():
        refuse_links(path)
    if main:
        path.mkdir(parents=True, exist_ok=True)
        fd = _lock(path) if fcntl is not None else None
    try:
        if main:
            remove_orphans(path)
        latest = path / ckpt.LATEST
        state = ckpt.load(latest, require=ckpt.RESUME_KEYS) if latest.exists() else None
        if state is not None:
            changed = config_changes(_as_current(state["config"]), cfg.to_dict())
            if changed:
                raise ValueError(f"run_dir: {path} holds a run trained with other settings ({'; '.join(changed)}); "
                                 "resume it with its own settings (only "
                                 f"{', '.join(sorted(RESUMABLE))} may change) or train into a new folder")
        fresh = state is None
        before = set() if created_dir else {p.name for p in path.iterdir()}
        config_path = path / CONFIG_FILE
        old_config = config_path.read_bytes() if fresh and config_path.exists() else None
        try:
            if main:
                if fresh:
                    (path / METRICS_FILE).unlink(missing_ok=True)
                atomic_write_text(config_path, dump_toml(cfg))
            yield RunFolder(path, state)
        except BaseException:
            if main and fresh and not latest.exists():
                _roll_back(path, created_dir, before, old_config)
            raise
    finally:
        if fd is not None:
            os.close(fd)
