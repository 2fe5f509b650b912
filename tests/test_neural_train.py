"""Training: a tiny U-Net overfits 4 images, exact resume after a kill, DDP = one process, the GPU path's
CPU fallbacks, and metrics that are what they claim and load into compare."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import memgen.data
from lab.cli import main
from compare.timescales import series, timescales
from lab.run_metrics import METRICS
from neural import dump_toml, load_config, load_denoiser, make_probes, measure_run, read_metrics, train
from neural.checkpoint import LATEST, list_checkpoints, load
from neural.presets import model_from_config


SMALL = ["data.params={n = 48, d = 3}", "model.params={width = 32, depth = 2, dropout = 0.1}", "train.steps=12",
         "train.batch_size=8", "train.lr=1e-3", "train.first_checkpoint=2", "train.checkpoints_per_decade=4",
         "train.save_every=4", "train.progress=false", "measure.probes=8", "measure.sigmas=4", "measure.samples=16",
         "measure.sample_steps=4", "measure.batch_size=16", "train.threads=1"]
VP = ["model.precond=vp", "train.loss=ddpm", "model.timesteps=200"]


def _same_rows(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        ra, rb = dict(ra), dict(rb)
        ra.pop("wall_time"), rb.pop("wall_time")
        assert ra == rb


class Killed(Exception):
    pass


def _kill_at(step):
    def callback(s, loss):
        if s == step:
            raise Killed
    return callback


@pytest.mark.parametrize("extra", [[], VP], ids=["edm", "ddpm"])
def test_killed_run_resumes_exactly(tmp_path, extra):
    cfg = load_config(None, SMALL + extra)
    train(cfg, tmp_path / "a", metrics=METRICS)
    with pytest.raises(Killed):
        train(cfg, tmp_path / "b", metrics=METRICS, callback=_kill_at(10))
    assert load(tmp_path / "b" / LATEST)["step"] == 8
    rows = read_metrics(tmp_path / "b")
    assert [r["step"] for r in rows] == [2, 4, 6]
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:      # a row measured after `latest`: lost work
        f.write(json.dumps({**rows[-1], "step": 9}) + "\n")
    train(cfg, tmp_path / "b", metrics=METRICS)
    a, b = load(tmp_path / "a" / LATEST), load(tmp_path / "b" / LATEST)
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    assert a["step"] == b["step"] == 12 and a["loss_sum"] == b["loss_sum"]
    _same_rows(read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b"))
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [2, 4, 6, 11, 12]
    train(cfg, tmp_path / "b", metrics=METRICS)                # a finished run is left as it is
    _same_rows(read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b"))


def test_resume_with_another_config_is_refused(tmp_path):
    train(load_config(None, SMALL + ["measure.enabled=false", "train.steps=4"]), tmp_path)
    with pytest.raises(ValueError, match="train.lr"):
        train(load_config(None, SMALL + ["measure.enabled=false", "train.steps=4", "train.lr=0.5"]), tmp_path)
    train(load_config(None, SMALL + ["measure.enabled=false", "train.steps=6"]), tmp_path)   # longer is fine
    assert load(tmp_path / LATEST)["step"] == 6


def test_metrics_are_what_they_claim_and_load_into_compare(tmp_path):
    cfg = load_config(None, SMALL)
    train(cfg, tmp_path, metrics=METRICS)
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [2, 4, 6, 11, 12]
    data = memgen.data.load("gmm", n=48, d=3)
    probes = make_probes(data, probes=8, sigmas=4, samples=16, seed=0)
    model = load_denoiser(tmp_path, 12)
    last = rows[-1]
    np.testing.assert_allclose(last["sigma"], probes.sigmas.numpy(), rtol=1e-12)
    for name, pts, noise in (("e_train", probes.train, probes.train_noise), ("e_val", probes.val, probes.val_noise)):
        with torch.no_grad():
            ref = [float(((model(pts + s * noise, s) - pts) ** 2).mean()) for s in probes.sigmas.tolist()]
        np.testing.assert_allclose(last[name], ref, rtol=1e-5)
    np.testing.assert_allclose(last["gap"], (np.array(last["e_val"]) - last["e_train"]) / last["e_train"], rtol=1e-9)
    assert 0 <= last["replicate_fraction"] <= 1 and np.isfinite(last["sliced_wasserstein_val"])
    assert np.isfinite([r["train_loss"] for r in rows]).all() and rows[-1]["images_seen"] == 12 * 8

    t, g = series(rows, "gap", sigma=1.0)
    j = int(np.argmin(np.abs(np.log(probes.sigmas.numpy()))))
    np.testing.assert_allclose(g, [r["gap"][j] for r in rows])
    ts = timescales(tmp_path, quality="sliced_wasserstein_val", memorization="gap", threshold=-10.0)
    assert ts["tau_mem"] == 2.0 and 2 <= ts["tau_gen"] <= 12

    post = measure_run(tmp_path, METRICS, steps=[4, 12], progress=False)
    again = read_metrics(post)
    for new, old in zip(again, [rows[1], rows[-1]]):
        for key in ("step", "e_train", "e_val", "gap", "replicate_fraction", "sliced_wasserstein_val", "train_loss"):
            assert new[key] == old[key]
    with pytest.raises(ValueError, match="overrides"):
        measure_run(tmp_path, METRICS, overrides=["train.lr=1"])
    assert main(["measure", str(tmp_path), "measure.samples=0", "--steps", "12", "--out", "cli.jsonl"]) == 0
    assert read_metrics(tmp_path / "cli.jsonl")[0]["e_train"] == last["e_train"]


def test_tiny_unet_overfits_four_images(tmp_path):
    """Denoising error on the 4 training images at sigma in {0.5, 1} falls by 10x.

    Training noise levels are drawn where the claim is measured (log-normal around log 0.7, the geometric
    middle of 0.5 and 1, std 0.5): the error then falls ~30x (32x with AVX-512, 36x without), a margin of 3x
    on every instruction set. With the default spread (log-normal(-1.2, 1.2)) most steps train other levels
    and 400 steps reached only 8-9x, so the same claim failed or passed by CPU.
    """
    cfg = load_config(None, ["data.name=mondrian", "data.params={n = 4, size = 8}", "model.preset=unet-tiny",
                             "train.steps=400", "train.batch_size=16", "train.lr=2e-3", "train.ema_decay=0.0",
                             "train.p_mean=-0.35", "train.p_std=0.5",
                             "train.save_every=400", "measure.enabled=false", "train.progress=false",
                             "train.threads=1"])
    y = memgen.data.load("mondrian", n=4, size=8).x
    noise = torch.randn((8, *y.shape), generator=torch.Generator().manual_seed(1))

    def error(model):
        with torch.no_grad():
            return np.mean([float(((model(y + s * z, s) - y) ** 2).mean()) for s in (0.5, 1.0) for z in noise])

    torch.manual_seed(cfg.train.seed)
    before = error(model_from_config(cfg.model, y.shape[1:]).eval())
    train(cfg, tmp_path)
    after = error(load_denoiser(tmp_path, ema=False))
    assert after < before / 10


def _losses(cfg, run_dir):
    out = []
    train(cfg, run_dir, callback=lambda s, loss: out.append(float(loss)))
    return np.array(out)


def test_gpu_path_cpu_fallbacks_in_training(tmp_path):
    """bf16 autocast stays close to fp32; channels-last and torch.compile (eager backend) change nothing."""
    base = ["data.name=mondrian", "data.params={n = 8, size = 8}", "model.preset=unet-tiny", "train.steps=3",
            "train.batch_size=4", "train.lr=1e-3", "measure.enabled=false", "train.progress=false", "train.threads=1"]
    ref = _losses(load_config(None, base + ["train.precision=fp32"]), tmp_path / "fp32")
    fast = _losses(load_config(None, base + ["train.precision=fp32", "train.channels_last=on",
                                             "train.compile=eager"]), tmp_path / "cl")
    low = _losses(load_config(None, base + ["train.precision=bf16"]), tmp_path / "bf16")
    np.testing.assert_allclose(fast, ref, rtol=1e-4)
    np.testing.assert_allclose(low, ref, rtol=5e-2)


def test_ddp_two_processes_equal_one_process(tmp_path):
    """torchrun, 2 gloo processes, global batch 8 (4 each) == one process with batch 8."""
    opts = SMALL + ["model.params={width = 32, depth = 2}", "measure.enabled=false"]
    cfg = load_config(None, opts)
    (tmp_path / "c.toml").write_text(dump_toml(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "lab",
           "train", str(tmp_path / "two"), "-c", str(tmp_path / "c.toml")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _two_processes_equal_one(cfg, tmp_path)


def _two_processes_equal_one(cfg, tmp_path):
    """The run in ``tmp_path/two`` (2 processes) is the run ``cfg`` trains in one process, to float32 rounding."""
    train(cfg, tmp_path / "one")
    a, b = load(tmp_path / "one" / LATEST), load(tmp_path / "two" / LATEST)
    assert a["step"] == b["step"] == 12
    for key in ("model", "ema"):
        for k in a[key]:
            torch.testing.assert_close(b[key][k], a[key][k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["train_loss"] for r in read_metrics(tmp_path / "two")],
                               [r["train_loss"] for r in read_metrics(tmp_path / "one")], rtol=1e-5)
    assert json.loads((tmp_path / "two" / "record.json").read_text())["world_size"] == 2


def test_class_conditional_run_is_measured_with_each_probes_label(tmp_path):
    cfg = load_config(None, SMALL + ["model.class_conditional=true", "train.steps=4"])
    train(cfg, tmp_path, metrics=METRICS)
    last = read_metrics(tmp_path)[-1]
    data = memgen.data.load("gmm", n=48, d=3)
    probes = make_probes(data, probes=8, sigmas=4, samples=16, seed=0, conditional=True)
    model = load_denoiser(tmp_path, 4)
    assert model.num_classes == 2
    m = len(probes.train)
    for name, pts, noise, lab in (("e_train", probes.train, probes.train_noise, probes.probe_labels[:m]),
                                  ("e_val", probes.val, probes.val_noise, probes.probe_labels[m:])):
        with torch.no_grad():
            ref = [float(((model(pts + s * noise, s, lab) - pts) ** 2).mean()) for s in probes.sigmas.tolist()]
            wrong = [float(((model(pts + s * noise, s, 1 - lab) - pts) ** 2).mean()) for s in probes.sigmas.tolist()]
        np.testing.assert_allclose(last[name], ref, rtol=1e-5)
        assert not np.allclose(ref, wrong, rtol=1e-5)
    assert {r["group"] for r in last["replicates_by_group"]} == {"all", 0, 1}


def test_per_step_seed_draws_what_torch_manual_seed_draws():
    """The step's dropout seeding on CPU (the CPU generator only) draws exactly what torch.manual_seed does."""
    from neural.step import seed_global
    drop = torch.nn.Dropout(0.3)
    for seed in (0, 12345, 2 ** 62 + 7):
        torch.manual_seed(seed)
        want = torch.rand(5), torch.randn(3), drop(torch.ones(64))
        torch.manual_seed(seed + 1)
        torch.randn(1)                                   # leave a cached normal behind
        seed_global(seed, torch.device("cpu"))
        got = torch.rand(5), torch.randn(3), drop(torch.ones(64))
        assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_numba_kernels_leave_torch_thread_count_alone():
    """numba's first parallel region would reset the OpenMP thread count torch uses (memgen.threads): in a fresh
    process on one torch thread, memgen's numba kernels (the replicate search) leave it at one."""
    code = ("import torch; torch.set_num_threads(1)\n"
            "from compare.replicates import replicates\n"
            "replicates(torch.randn(64, 3), torch.randn(40, 3), progress=False)\n"
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.split()[-1] == "1"


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_task_trained_data_parallel_equals_one_process(tmp_path, executor):
    """lab.executors with processes=2 (the torchrun environment, 2 gloo processes, 4 of the global batch 8
    each) trains the run that one process with batch 8 trains."""
    from lab.executors import run_tasks

    cfg = load_config(None, SMALL + ["model.params={width = 32, depth = 2}", "measure.enabled=false"])
    assert run_tasks([(cfg, tmp_path / "two")], executor=executor, workers=1, processes=2) == []
    _two_processes_equal_one(cfg, tmp_path)
