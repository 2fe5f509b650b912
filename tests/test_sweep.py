"""Sweeps: the grid, run folders and sweep.json; local, process-pool and submitit (local executor) runs agree."""
import json

import pytest
import torch

from compare.timescales import sweep_timescales
from lab.run_metrics import METRICS
from neural import load_config
from neural.checkpoint import LATEST, load
from lab.cli import main
from neural import dump_toml
from lab.commands.train import parse_axis
from lab.sweep import grid, run_name, run_sweep

BASE = ["data.params={n = 64, d = 2}", "model.params={width = 16, depth = 1}", "train.steps=6", "train.batch_size=8",
        "train.first_checkpoint=2", "train.checkpoints_per_decade=4", "train.progress=false", "measure.probes=4",
        "measure.sigmas=3", "measure.samples=8", "measure.sample_steps=3", 'measure.metrics=["replicates", "fidelity"]',
        "train.threads=1"]
AXES = {"data.subset": [8, 24], "train.lr": [1e-3]}


def test_grid_and_names():
    points = grid({"a.x": [1, 2, 3], "b.y": ["p", "q"]})
    assert len(points) == 6 and points[0] == {"a.x": 1, "b.y": "p"} and points[1] == {"a.x": 1, "b.y": "q"}
    assert run_name(3, {"train.lr": 1e-3, "data.name": "a/b c"}) == "003_lr=0.001_name=abc"
    with pytest.raises(ValueError, match="axes"):
        grid({"a.x": []})


def test_command_line_sweep(tmp_path):
    assert parse_axis("train.lr=1e-3,4e-4") == ("train.lr", [1e-3, 4e-4])
    assert parse_axis("model.params.channel_mult=[[1, 2], [1, 2, 2]]") == ("model.params.channel_mult",
                                                                            [[1, 2], [1, 2, 2]])
    (tmp_path / "c.toml").write_text(dump_toml(load_config(None, BASE)))
    assert main(["sweep", str(tmp_path / "s"), "train.steps=3", "-c", str(tmp_path / "c.toml"),
                 "--grid", "data.subset=8,24"]) == 0
    runs = json.loads((tmp_path / "s" / "sweep.json").read_text())["runs"]
    assert [r["values"] for r in runs] == [{"data.subset": 8}, {"data.subset": 24}]
    assert all(load(tmp_path / "s" / r["name"] / LATEST)["step"] == 3 for r in runs)


def _weights(run_dir):
    return load(run_dir / LATEST)["model"]


def _local(tmp_path):
    cfg = load_config(None, BASE)
    return cfg, run_sweep(cfg, AXES, tmp_path / "local", metrics=METRICS)


def _agree(local, runs):
    for a, b in zip(local, runs, strict=True):
        assert a.name == b.name
        wa, wb = _weights(a), _weights(b)
        for k in wa:            # other processes may use other thread counts: equal up to summation order
            torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-7)


def test_local_sweep_writes_runs_that_compare_reads(tmp_path):
    cfg, local = _local(tmp_path)
    spec = json.loads((tmp_path / "local" / "sweep.json").read_text())
    assert [r["values"]["data.subset"] for r in spec["runs"]] == [8, 24]
    table = sweep_timescales(tmp_path / "local", memorization="replicate_fraction", threshold=0.5)
    assert [row["n"] for row in table] == [8, 24] and all("tau_mem" in row for row in table)
    small, large = (json.loads((p / "record.json").read_text())["train_index"] for p in local)
    assert len(small) == 8 and len(set(large)) == 24 and large[:8] == small      # nested subsets
    with pytest.raises(ValueError, match="train.lr"):
        run_sweep(cfg, {"train.lr": [-1.0]}, tmp_path / "bad")
    with pytest.raises(ValueError, match="executor"):
        run_sweep(cfg, AXES, tmp_path / "bad", executor="slurm-by-hand")


def test_submitit_local_executor_agrees_with_local_runs(tmp_path):
    cfg, local = _local(tmp_path)
    _agree(local, run_sweep(cfg, AXES, tmp_path / "sub", executor="submitit", cluster="local",
                            slurm={"timeout_min": 10}))


@pytest.mark.slow
def test_process_pool_agrees_with_local_runs(tmp_path):
    cfg, local = _local(tmp_path)
    _agree(local, run_sweep(cfg, AXES, tmp_path / "proc", executor="process", workers=2))
