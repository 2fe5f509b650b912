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
from hypothesis import given, settings, strategies as st
import torch

from lab.cli import main
from neural import load_config, load_denoiser, read_metrics, train
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
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")   # as memgen.run_files names them
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


# --- issue 23: nothing written outside a run folder, one-line errors ---------------------------------

def _outside(tmp_path, name):
    """An outside target for a link named ``name``: a folder holding a temporary-like file, or a file."""
    target = tmp_path / "outside" / name.lstrip(".")
    if name == "checkpoints":
        target.mkdir(parents=True)
        (target / ".step_000000002.pt.abcd1234.tmp").write_bytes(b"not yours")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("# precious notes\n")                          # valid TOML, so the CLI reads it
    return target


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", [".lock", "checkpoints", "latest.pt", "metrics.jsonl", "record.json",
                                  "config.toml"])
def test_symlinked_entry_is_refused_and_nothing_outside_changes(tmp_path, capsys, name):
    run = tmp_path / "run"
    run.mkdir()
    target = _outside(tmp_path, name)
    (run / name).symlink_to(target, target_is_directory=target.is_dir())
    before = _snapshot(tmp_path / "outside")
    with pytest.raises(ValueError, match=rf"run_dir: {run / name} is a symbolic link \(to {target}\)"):
        train(_cfg(), run)
    assert main(["train", str(run), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / name} is a symbolic link" in err
    assert _snapshot(tmp_path / "outside") == before
    assert [p.name for p in run.iterdir()] == [name]                          # nothing written in the run either


def test_orphan_clean_up_never_follows_links(tmp_path):
    run, target = tmp_path / "run", _outside(tmp_path, "checkpoints")
    run.mkdir()
    (run / "checkpoints").symlink_to(target, target_is_directory=True)
    outside_file = tmp_path / "outside" / "kept.bin"
    outside_file.write_bytes(b"keep")
    (run / ".latest.pt.abcd1234.tmp").symlink_to(outside_file)               # named like an orphan
    assert remove_orphans(run) == []
    assert (target / ".step_000000002.pt.abcd1234.tmp").read_bytes() == b"not yours"
    assert outside_file.read_bytes() == b"keep" and (run / ".latest.pt.abcd1234.tmp").is_symlink()


def test_orphans_of_a_run_folder_reached_through_a_link_are_removed(tmp_path):
    real, link = tmp_path / "scratch" / "run", tmp_path / "run"
    real.mkdir(parents=True)
    link.symlink_to(real, target_is_directory=True)
    (real / ".latest.pt.abcd1234.tmp").write_bytes(b"partial")
    assert remove_orphans(link) == [link / ".latest.pt.abcd1234.tmp"]
    assert not (real / ".latest.pt.abcd1234.tmp").exists()


def test_lock_file_is_opened_without_following_a_link(tmp_path):
    from neural.rundir import _lock

    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(outside)                          # a link made after the check
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        _lock(tmp_path / "run")
    assert outside.read_text() == "precious"


def test_diverged_run_stops_naming_the_step_and_keeps_the_last_finite_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(run), *FAST, "train.lr=1e8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert (f"memgen: error: train: the run diverged at step 3 (loss nan); {run / LATEST} keeps the last finite "
            "state, step 2; lower train.lr") in err
    state = load(run / LATEST)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for key in ("model", "ema") for v in state[key].values())
    assert [r["step"] for r in read_metrics(run)] == [2]


def test_weights_gone_infinite_are_never_saved(tmp_path, monkeypatch):
    import neural.training
    from neural.training import Diverged

    runs, build_run = [], neural.training.build_run
    monkeypatch.setattr(neural.training, "build_run", lambda *a: runs.append(build_run(*a)) or runs[-1])

    def poison(step, loss):                                  # a finite loss, then an infinite weight at step 2
        if step == 2:
            next(runs[0].model.parameters()).data[0] = float("inf")

    with pytest.raises(Diverged, match=r"diverged at step 2 \(NaN or infinite weights after a loss of "
                                       r"[0-9.]+\); .*latest\.pt keeps the last finite state, step 1"):
        train(_cfg("train.save_every=1"), tmp_path, callback=poison)
    assert load(tmp_path / LATEST)["step"] == 1


def _unavailable_devices():
    from neural.ddp import available_devices

    have = available_devices()
    return [d for d in ("cuda", "mps", "cuda:7") if (d if d != "cuda" else "cuda:0") not in have]


@pytest.mark.parametrize("device", _unavailable_devices())
def test_unavailable_device_is_named_before_anything_is_written(tmp_path, capsys, device):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"train\.device: '{device}' is not available on this machine; "
                                         r"available: cpu"):
        train(_cfg(f"train.device={device}"), run)
    assert main(["train", str(run), *FAST, f"train.device={device}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"train.device: '{device}' is not available" in err
    assert not run.exists()
    train(_cfg(), run)                                                   # a checkpoint is not called corrupt
    with pytest.raises(ValueError, match=rf"^device: '{device}' is not available") as info:
        load_denoiser(run, device=device)
    assert not isinstance(info.value, CheckpointError)
    assert main(["measure", str(run), "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"memgen: error: --device: '{device}' is not available on this "
                                                   "machine; available: cpu")


def test_tampered_checkpoint_shapes_are_named(tmp_path, capsys):
    train(_cfg(), tmp_path)
    good = load(tmp_path / LATEST)
    bad = {**good, "model": {**good["model"]}}
    key = next(iter(bad["model"]))
    bad["model"][key] = torch.zeros(3, 3)
    torch.save(bad, tmp_path / LATEST)
    with pytest.raises(CheckpointError, match=rf"{LATEST}: its model weights do not fit the network of its config "
                                              rf"\(size mismatch for {key}: copying a param with shape"):
        train(_cfg("train.steps=6"), tmp_path)
    torch.save({**good, "ema": bad["model"]}, tmp_path / LATEST)
    with pytest.raises(CheckpointError, match=rf"{LATEST}: its EMA weights do not fit"):
        load_denoiser(tmp_path)
    assert main(["train", str(tmp_path), *FAST, "train.steps=6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its model weights do not fit" not in err   # the EMA one now, named
    opt = {**good["optimizer"], "state": {**good["optimizer"]["state"]}}
    opt["state"][0] = {**opt["state"][0], "exp_avg": torch.zeros(5)}
    torch.save({**good, "optimizer": opt}, tmp_path / LATEST)
    with pytest.raises(CheckpointError, match=rf"{LATEST}: its optimizer state 'exp_avg' has shape \(5,\)"):
        train(_cfg("train.steps=6"), tmp_path)
    assert load(tmp_path / LATEST)["step"] == 4                                # nothing was touched


@pytest.mark.parametrize("damage,message", [
    ('{"step": 9, \n', r"line 4 is not valid JSON \(Expecting property name enclosed in double quotes, column 13\)"),
    ('[1, 2]\n', r"line 4 is not a JSON object with the keys step"),
    ('{"loss": 1}\n', r"line 4 is not a JSON object with the keys step"),
])
def test_damaged_metrics_file_is_named_with_its_line(tmp_path, capsys, damage, message):
    train(_cfg(), tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(damage)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'metrics.jsonl'}: {message}; the file is damaged"):
        train(_cfg("train.steps=6"), tmp_path)
    assert main(["train", str(tmp_path), "train.steps=6"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_damaged_record_and_config_are_named_with_their_line(tmp_path, capsys):
    from memgen.run_files import read_record

    train(_cfg(), tmp_path)
    record = tmp_path / "record.json"
    assert read_record(tmp_path)["n_train"] == 20
    record.write_text(record.read_text()[:-20])
    with pytest.raises(ValueError, match=rf"{record}: line \d+ is not valid JSON \(.*column \d+\); the file is damaged"):
        read_record(tmp_path)
    record.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match=rf"{record}: not UTF-8 text \(byte 0\)"):
        read_record(tmp_path)
    (tmp_path / "config.toml").write_text("[train]\nsteps = = 3\n")
    assert main(["train", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'config.toml'}: not valid TOML" in err and "line 2" in err


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        raise OSError(28, "No space left on device")


def test_full_disk_names_the_path_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import memgen.run_files

    real = os.fdopen
    monkeypatch.setattr(memgen.run_files.os, "fdopen", lambda fd, mode: _FullDisk(real(fd, mode)))
    with pytest.raises(OSError, match="No space left on device") as info:
        memgen.run_files.atomic_write_bytes(tmp_path / "a" / "x.bin", b"data")
    assert info.value.filename == str(tmp_path / "a" / "x.bin") and list((tmp_path / "a").iterdir()) == []
    run = tmp_path / "run"
    assert main(["train", str(run), *FAST]) == 2
    assert capsys.readouterr().err == f"memgen: error: {run / 'config.toml'}: No space left on device\n"
    assert not run.exists()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=12), st.from_regex(r"(cuda|mps|cpu|xpu|meta|tpu)(:-?\d{1,3})?", fullmatch=True)))
def test_any_device_string_is_a_device_of_this_machine_or_a_named_error(spec):
    from neural.ddp import available_devices, pick_device

    try:
        dev = pick_device(spec)
    except ValueError as e:
        assert str(e).startswith(f"train.device: {spec!r} is not available on this machine; available: cpu")
    else:
        assert spec in ("auto", "cpu", "cuda") or dev.type in ("cpu", "mps") or str(dev) in available_devices()


def test_a_linked_config_is_named_as_a_link_before_it_is_read(tmp_path, capsys):
    run, outside = tmp_path / "run", tmp_path / "notes.txt"
    run.mkdir()
    outside.write_text("not [toml")
    (run / "config.toml").symlink_to(outside)
    assert main(["train", str(run), *FAST]) == 2
    assert f"{run / 'config.toml'} is a symbolic link" in capsys.readouterr().err
    assert outside.read_text() == "not [toml"


def test_measure_run_refuses_a_damaged_recorded_train_index_naming_the_file(tmp_path):
    """``measure_run`` reads a run's training indices through the same check as the audit."""
    import json

    from lab.run_metrics import METRICS
    from neural.measure import measure_run

    train(_cfg(), tmp_path)
    record = json.loads((tmp_path / "record.json").read_text())
    for bad, says in (([-1], "outside"), ([0, 0], "repeats"), ([], "non-empty list")):
        (tmp_path / "record.json").write_text(json.dumps({**record, "train_index": bad}))
        with pytest.raises(ValueError, match=rf"record\.json: train_index .*{says}"):
            measure_run(tmp_path, METRICS, progress=False)
