"""``memgen report`` on a cluster: its trained runs as one submitit job array (here submitit's local executor),
collected by calling the command again; and the executors' shared rules (lab.executors)."""
import json

import pytest

from lab.claims.report import RunsPending, run_report
from lab.commands.report import slurm_parameters
from neural import load_config, train
from lab.executors import finished


def test_report_submits_missing_runs_once_then_collects_them(tmp_path):
    pytest.importorskip("submitit")
    out, kw = tmp_path / "cluster", dict(scale="quick", only="3", executor="submitit", cluster="local",
                                         progress=False)
    with pytest.raises(RunsPending) as pending:           # submitted, not waited for: no report yet
        run_report(out, **kw)
    jobs = json.loads((out / "runs" / "submitit" / "jobs.json").read_text())
    assert list(jobs) == pending.value.pending and len(jobs) == 1
    assert not (out / "report.md").exists()
    rows = run_report(out, wait=True, **kw)               # the queued job is waited for, not submitted again
    assert json.loads((out / "runs" / "submitit" / "jobs.json").read_text()) == jobs
    assert all(finished(load_config(run / "config.toml"), run) for run in (out / "runs").glob("[0-9a-f]*"))
    assert run_report(out, **kw) == rows                  # all there: nothing submitted, the outcome reused
    assert json.loads((out / "runs" / "submitit" / "jobs.json").read_text()) == jobs
    here = run_report(tmp_path / "here", scale="quick", only="3", progress=False)
    assert [(r["verdict"], r["our_value"]) for r in rows] == [(r["verdict"], r["our_value"]) for r in here]


def test_a_run_is_finished_only_at_its_last_step(tmp_path):
    cfg = load_config(None, ["data.name=gmm", "data.params={n = 40, d = 2, n_train = 8}", "model.preset=mlp-small",
                             "train.steps=4", "train.batch_size=4", "measure.enabled=false", "train.progress=false"])
    assert not finished(cfg, tmp_path / "r")
    train(cfg, tmp_path / "r")
    assert finished(cfg, tmp_path / "r")
    assert not finished(cfg.to_dict() | {"train": {**cfg.to_dict()["train"], "steps": 8}}, tmp_path / "r")


def test_slurm_parameters_read_numbers_as_numbers():
    assert slurm_parameters("timeout_min=600,slurm_partition=gpu,mem_gb=7.5") == {
        "timeout_min": 600, "slurm_partition": "gpu", "mem_gb": 7.5}
    with pytest.raises(Exception, match="KEY=VALUE"):
        slurm_parameters("timeout_min")
