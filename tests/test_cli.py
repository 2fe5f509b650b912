"""The command line: settings anywhere, one-line errors (traceback with --debug), ``memgen config``,
``--version``, output folders that are files, and progress bars only where someone watches."""
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import memgen
from lab.cli import main, parse_args, split_settings
from memgen.progress import progress_bar
from neural.checkpoint import LATEST, load
from neural.config import Config

ROOT = Path(__file__).resolve().parents[1]
FAST = ["data.params={n = 40, d = 2}", "model.params={width = 16, depth = 2}", "train.batch_size=8",
        "train.progress=false", "train.threads=1", "measure.enabled=false"]


def test_settings_are_accepted_anywhere():
    args = parse_args(["sweep", "s", "train.steps=3", "--grid", "data.subset=8,16", "data.name=gmm",
                       "--executor", "process", "train.lr=1e-3"])
    assert args.grid == ["data.subset=8,16"] and args.executor == "process"
    assert args.overrides == ["train.steps=3", "data.name=gmm", "train.lr=1e-3"]
    args = parse_args(["measure", "r", "--steps", "10", "12", "measure.samples=0", "--out", "m.jsonl"])
    assert args.steps == [10, 12] and args.overrides == ["measure.samples=0"] and args.out == "m.jsonl"
    assert split_settings(["train", "r", "--", "a.b=1"]) == (["train", "r", "--", "a.b=1"], [])
    with pytest.raises(SystemExit):
        parse_args(["presets", "train.steps=3"])                 # a command without settings refuses them


def test_train_with_a_config_file_and_settings_after_it(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[train]\nsteps = 100\nlr = 0.002\nfirst_checkpoint = 2\n")
    assert main(["train", str(tmp_path / "run"), "-c", str(cfg), "train.steps=3", *FAST]) == 0
    state = load(tmp_path / "run" / LATEST)
    assert state["step"] == 3 and state["config"]["train"]["lr"] == 0.002


def test_user_error_is_one_line_and_exit_2_traceback_with_debug(tmp_path, capsys):
    assert main(["train", str(tmp_path / "r"), "train.stpes=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memgen: error: train.stpes: unknown setting") and err.count("\n") == 1
    with pytest.raises(ValueError, match="train.stpes"):
        main(["train", str(tmp_path / "r"), "--debug", "train.stpes=3"])
    assert main(["train", str(tmp_path / "r"), "-c", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err == f"memgen: error: {tmp_path / 'missing.toml'}: No such file or directory\n"
    done = subprocess.run([sys.executable, "-m", "lab", "train", str(tmp_path / "r"), "train.stpes=3"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


def test_output_folder_that_is_a_file_is_named(tmp_path, capsys):
    path = tmp_path / "a_file"
    path.write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--out", str(path)])
    assert exit_.value.code == 2 and f"{path} is a file; expected a folder" in capsys.readouterr().err


def test_config_lists_every_setting_with_its_default(capsys):
    assert main(["config"]) == 0
    lines = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    expected = {}
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            expected[f"{section.name}.{f.name}"] = default
    assert lines.keys() == expected.keys()
    assert json.loads(lines["train.steps"]) == expected["train.steps"] == 10000
    assert all(json.loads(lines[k]) == v for k, v in expected.items() if not isinstance(v, (list, dict)))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"memgen {memgen.__version__}\n"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    bar = progress_bar(range(5), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2, 3, 4] and sys.stderr.getvalue() == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress_bar(range(5), desc="x", file=terminal)) == [0, 1, 2, 3, 4]
    assert "5/5" in terminal.getvalue()
    assert progress_bar(range(5), enabled=False).disable


def test_interrupt_and_bugs(monkeypatch, capsys):
    import lab.commands.train

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(lab.commands.train, "_presets", interrupted)
    assert main(["presets"]) == 130 and capsys.readouterr().err == "memgen: interrupted\n"

    def bug(args):
        raise RuntimeError("internal")

    monkeypatch.setattr(lab.commands.train, "_presets", bug)
    with pytest.raises(RuntimeError, match="internal"):                # not a user error: the traceback stays
        main(["presets"])


def test_measure_names_the_device_option_when_the_device_is_missing(tmp_path, capsys):
    """``memgen measure RUN --device cuda:99`` on a machine without that GPU: one line naming ``--device`` (the
    Python API names its argument ``device``), before the run is read or anything written."""
    from lab.run_metrics import METRICS
    from neural.ddp import available_devices
    from neural.measure import measure_run

    run = tmp_path / "run"
    assert main(["train", str(run), "train.steps=2", *FAST]) == 0
    before = sorted(p.name for p in run.iterdir())
    assert main(["measure", str(run), "--device", "cuda:99"]) == 2
    err = capsys.readouterr().err
    assert err == (f"memgen: error: --device: 'cuda:99' is not available on this machine; available: "
                   f"{', '.join(available_devices())} (or 'auto')\n")
    assert sorted(p.name for p in run.iterdir()) == before
    assert main(["measure", str(tmp_path / "no_run"), "--device", "cuda:99"]) == 2      # checked before the run
    assert capsys.readouterr().err.startswith("memgen: error: --device: 'cuda:99'")
    with pytest.raises(ValueError, match=r"^device: 'cuda:99' is not available on this machine"):
        measure_run(run, METRICS, device="cuda:99", progress=False)
