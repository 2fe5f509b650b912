"""Training-time figures at a tiny scale: what they save is what the compare functions (and brute force) give
on the saved checkpoints."""
import json

import numpy as np
import pytest
import torch

from compare import generalization_gap, mondrian_valid_fraction, read_csv
from figures.training_gap import EMPIRICAL, cpu_threads, training_gap
from figures.yoon_replication import RUNS, mondrian_samples, run_config, settings, training_set, yoon_replication
from memgen import edm_sigmas, sample
from memgen.data import mondrian
from neural import list_checkpoints, load_denoiser, make_probes
from toymodels import EmpiricalDenoiser


@pytest.fixture
def one_thread():
    """The figures measure with their runs' single thread: recompute with the same float32 reductions."""
    with cpu_threads(1):
        yield


def test_training_gap_records_what_the_checkpoints_give(tmp_path, one_thread):
    kw = dict(steps=8, n_train=8, n_val=8, probes=8, sigmas=6, n_samples=6, sample_steps=3, n_reference=40,
              first_checkpoint=4, checkpoints_per_decade=2)
    _, summary = training_gap(tmp_path, seed=3, progress=False, **kw)
    rows = read_csv(tmp_path / "gap.csv")
    steps = sorted(set(rows.column("step").tolist()))
    assert steps == [4, 8]
    np.testing.assert_allclose(rows.where(step=8).column("sigma").astype(float), np.geomspace(0.002, 80, 6),
                               rtol=1e-12)
    for step in steps:
        g = rows.where(step=step).column("gap").astype(float)
        assert summary["gap_by_step"][str(step)]["peak_gap"] == g.max()

    # the recorded errors are those of the saved EMA weights on the fixed probes with fixed noise
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    data = mondrian(16, size=8, seed=3, n_train=8)
    probes = make_probes(data, record["train_index"], probes=8, sigmas=6, samples=0, seed=3)
    model = load_denoiser(tmp_path / "run", 8)
    again = generalization_gap(model, probes.train, probes.val, probes.sigmas, train_noise=probes.train_noise,
                               val_noise=probes.val_noise, progress=False)
    saved = rows.where(step=8)
    for col in ("e_train", "e_val", "gap"):
        np.testing.assert_allclose(saved.column(col).astype(float), again.column(col).astype(float), rtol=1e-5)
    with torch.no_grad():                                    # brute force: mean squared error per dimension
        brute = [float((model(probes.train + s * probes.train_noise, s) - probes.train).double().pow(2).mean())
                 for s in probes.sigmas.tolist()]
    np.testing.assert_allclose(saved.column("e_train").astype(float), brute, rtol=1e-4)

    # the empirical denoiser's trajectory, re-run from the same seeded noise: nearest distances by cdist
    traj = read_csv(tmp_path / "trajectories.csv").where(model=EMPIRICAL)
    train = data.x[torch.as_tensor(record["train_index"])]
    noise = torch.randn(6, *train.shape[1:], generator=torch.Generator().manual_seed(3))
    _, path = sample(EmpiricalDenoiser(train), noise, edm_sigmas(3), method="heun", return_trajectory=True)
    last = int(max(traj.column("step")))
    d = torch.cdist(path.x[last].reshape(6, -1).double(), train.reshape(len(train), -1).double()).min(1).values
    np.testing.assert_allclose(traj.where(step=last).column("nearest_distance").astype(float), d.numpy(), rtol=1e-6)
    assert summary["trajectories_at_smallest_sigma"][f"mondrian / {EMPIRICAL}"]["sigma"] == float(path.sigma[last])

    # the network's samples from the same noise: replicate fraction by the ratio criterion, brute force
    with torch.no_grad():
        x = sample(model, noise, edm_sigmas(3), method="heun")
    d = torch.cdist(x.reshape(6, -1).double(), train.reshape(len(train), -1).double()).sort(1).values
    final = summary["final_samples"]
    assert abs(final["replicate_fraction"] - float((d[:, 0] / d[:, 1] < 1 / 3).double().mean())) < 1e-12
    assert final["nearest_distance_median"] == pytest.approx(float(np.median(d[:, 0].numpy())), rel=1e-5)


def test_yoon_replication_records_what_the_checkpoints_give(tmp_path, one_thread):
    kw = dict(steps=6, n_mondrian=6, n_samples=12, sample_steps=3, first_checkpoint=3, checkpoints_per_decade=2,
              n_boot=100)
    _, summary = yoon_replication(tmp_path, seed=1, progress=False, **kw)
    s = settings("cpu", **kw)
    rows = read_csv(tmp_path / "replication.csv")
    assert set(rows.column("run")) == set(RUNS)
    alone, mixed = (training_set(run_config(s, dummies, seed=1)) for dummies in (False, True))
    assert torch.equal(alone[0], mixed[0][:6]) and len(mixed[0]) == 24          # the same Mondrians, 18 dummies
    assert alone[1].tolist() == [0] * 6 and mixed[1].tolist() == [0] * 6 + [1] * 18
    for name, (x, _) in zip(RUNS, (alone, mixed)):
        run_dir = tmp_path / "runs" / name.replace(" + ", "_plus_").replace(" ", "_")
        step = list_checkpoints(run_dir)[-1][0]
        row = rows.where(run=name, step=step)[0]
        assert summary[name]["replicate_fraction"] == row["replicate_fraction"]
        samples = mondrian_samples(load_denoiser(run_dir, step), x.shape[1:], n_samples=12, steps=3, seed=2)
        assert samples.abs().max() <= 1
        d = torch.cdist(samples.reshape(12, -1).double(), x.reshape(len(x), -1).double()).sort(1).values
        brute = float(((d[:, 0] / d[:, 1]) < 1 / 3).double().mean())              # the ratio criterion
        assert abs(row["replicate_fraction"] - brute) < 1e-12
        assert row["replicate_fraction_lo"] <= row["replicate_fraction"] <= row["replicate_fraction_hi"]
        assert abs(row["validity"] - mondrian_valid_fraction(samples, tol=s["tol"])) < 1e-12
        assert row["validity_strict"] <= row["validity"]                          # a stricter rule passes fewer
