"""Run folders: resumed only as the same run (settings and training data), one trainer at a time, no
orphan files, no config pinned by a failed start, and checkpoint files that are refused with their name."""
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from memgen.cli import main
from neural import load_config, load_denoiser, train
from neural.checkpoint import LATEST, CheckpointError, load, step_path
from neural.rundir import RESUMABLE, RunFolderLocked, open_run, remove_orphans

FAST = ["data.params={n = 40, d = 2}", "model.params={width = 16, depth = 2}", "train.steps=4",
        "train.batch_size=8", "train.lr=1e-3", "train.first_checkpoint=2", "train.save_every=2",
        "train.progress=false", "train.threads=1", "measure.enabled=false"]
ROOT = Path(__file__).resolve().parents[1]


def _cfg(*extra):
    return load_config(None, FAST + list(extra))


def _weights_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_edited_config_toml_is_refused_naming_the_change(tmp_path, capsys):
    train(_cfg(), tmp_path)
    toml = tmp_path / "config.toml"
    toml.write_text(toml.read_text().replace("lr = 0.001", "lr = 0.5"))          # edited between runs
    assert main(["train", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memgen: error: ")
    assert "train.lr: 0.001 -> 0.5" in err
    with pytest.raises(ValueError, match=r"data\.params\.n: 40 -> 41"):
        train(_cfg("data.params={n = 41, d = 2}"), tmp_path)
    assert load(tmp_path / LATEST)["step"] == 4                                    # nothing was touched


def test_changed_training_data_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "points.npy"
    np.save(data, rng.standard_normal((40, 2)))
    cfg = _cfg("data.name=from_array", f"data.params={{path_or_array = '{data}'}}")
    train(cfg, tmp_path / "run")
    x = np.load(data)
    x[3, 1] += 1e-3                                                                 # same settings, other data
    np.save(data, x)
    with pytest.raises(ValueError, match="training data changed"):
        train(cfg, tmp_path / "run")


def test_allowed_changes_resume_exactly(tmp_path):
    assert {"train.steps", "train.threads"} <= RESUMABLE
    train(_cfg("train.steps=6"), tmp_path / "straight")
    train(_cfg(), tmp_path / "extended")
    train(_cfg("train.steps=6", "train.save_every=3"), tmp_path / "extended")
    a, b = load(tmp_path / "straight" / LATEST), load(tmp_path / "extended" / LATEST)
    assert a["step"] == b["step"] == 6
    assert _weights_equal(a["model"], b["model"]) and _weights_equal(a["ema"], b["ema"])
    assert a["data_sha256"] == b["data_sha256"] and len(a["data_sha256"]) == 64
    train(_cfg("train.steps=7", "train.threads=2"), tmp_path / "extended")     # accepted (not bit-exact: threads)
    assert load(tmp_path / "extended" / LATEST)["step"] == 7
    assert "steps = 7" in (tmp_path / "extended" / "config.toml").read_text()
    older = load(tmp_path / "extended" / LATEST)                                # written before grad_clip existed
    del older["config"]["train"]["grad_clip"]
    torch.save(older, tmp_path / "extended" / LATEST)
    train(_cfg("train.steps=8"), tmp_path / "extended")
    assert load(tmp_path / "extended" / LATEST)["step"] == 8


def test_second_trainer_is_refused_naming_the_holder_until_it_exits(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom neural import load_config\nfrom neural.rundir import open_run\n"
         f"with open_run({str(tmp_path)!r}, load_config()):\n    print('locked', flush=True)\n    time.sleep(120)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderLocked, match=rf"in use by another trainer \(pid {holder.pid} on host "):
            train(_cfg(), tmp_path)
        with open_run(tmp_path / "other", _cfg()):                                 # another folder is free
            with pytest.raises(RunFolderLocked):                                    # a second open file description
                with open_run(tmp_path / "other", _cfg()):
                    pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    train(_cfg(), tmp_path)                                                         # the kernel dropped the lock
    assert load(tmp_path / LATEST)["step"] == 4


def test_orphan_temporary_files_are_removed_on_the_next_start(tmp_path):
    train(_cfg(), tmp_path)
    orphans = []
    for folder, name in ((tmp_path, LATEST), (tmp_path / "checkpoints", "step_000000002.pt")):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")   # as memgen.runs names them
        os.write(fd, b"\0" * 1000)
        os.close(fd)
        orphans.append(Path(tmp))
    keep = tmp_path / ".notes.tmp"
    keep.write_text("mine")
    train(_cfg("train.steps=6"), tmp_path)
    assert not any(p.exists() for p in orphans) and keep.exists()
    assert remove_orphans(tmp_path) == []


def test_failed_fresh_start_leaves_nothing_and_the_corrected_command_runs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(run), *FAST, "data.subset=1000"]) == 2
    assert "data.subset: 1000 exceeds the" in capsys.readouterr().err
    assert not run.exists()
    assert main(["train", str(run), *FAST]) == 0
    assert load(run / LATEST)["step"] == 4

    mine = tmp_path / "mine"                                                        # a folder the user prepared
    mine.mkdir()
    (mine / "config.toml").write_text("[data]\nsubset = 1000\n")
    (mine / "notes.txt").write_text("keep")
    assert main(["train", str(mine), *FAST]) == 2
    assert sorted(p.name for p in mine.iterdir()) == [".lock", "config.toml", "notes.txt"]
    assert (mine / "config.toml").read_text() == "[data]\nsubset = 1000\n"          # restored as it was
    assert main(["train", str(mine), *FAST, "data.subset=10"]) == 0


def test_truncated_and_foreign_checkpoints_are_named(tmp_path, capsys):
    train(_cfg(), tmp_path)
    full = (tmp_path / LATEST).read_bytes()
    (tmp_path / LATEST).write_bytes(full[:len(full) // 2])
    with pytest.raises(CheckpointError, match=rf"{LATEST}: not a readable checkpoint, truncated or corrupt"):
        train(_cfg(), tmp_path)
    (tmp_path / LATEST).write_bytes(full)
    step = step_path(tmp_path, 2)
    torch.save({"weights": torch.zeros(2)}, step)
    with pytest.raises(CheckpointError, match=r"step_000000002\.pt: not a memgen checkpoint \(no step, config"):
        load_denoiser(tmp_path, 2)
    step.write_bytes(b"")
    assert main(["measure", str(tmp_path), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(step) in err


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):                  # unpickling would call open(marker, "w"), creating the file
        return open, (self.marker, "w")


def test_checkpoint_holding_code_is_refused_unrun(tmp_path):
    train(_cfg(), tmp_path)
    marker = tmp_path / "payload_ran"
    state = load(tmp_path / LATEST)
    torch.save({**state, "extra": _Payload(str(marker))}, tmp_path / LATEST)
    for attempt in (lambda: train(_cfg(), tmp_path), lambda: load_denoiser(tmp_path)):
        with pytest.raises(CheckpointError) as info:
            attempt()
        msg = str(info.value)
        assert msg.startswith(str(tmp_path / LATEST)) and "holds code (a reference to io.open" in msg
        assert "not loaded" in msg and "weights_only" not in msg
        assert info.value.__suppress_context__
    assert not marker.exists()
    torch.load(tmp_path / LATEST, weights_only=False)        # the payload is real: a full unpickler runs it
    assert marker.exists()
