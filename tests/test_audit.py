"""``memgen audit`` end to end: a tiny trained run, a random diffusers model, and the optimal denoiser itself."""
import json

import numpy as np
import pytest
import torch

import memgen.data
from compare import read_csv
from figures.audit import AuditSettings, audit, load_data
from figures.audit.inputs import parse_data_spec
from memgen.cli import main
from toymodels import EmpiricalDenoiser

TINY = ["--probes", "8", "--sigmas", "3", "--samples", "12", "--trajectories", "4", "--steps", "3", "--threads", "1"]
GMM = "gmm:n=40,d=3,n_train=20,seed=3"


def optimal_factory():
    """``module:factory`` target: the optimal denoiser of the GMM training set above."""
    return EmpiricalDenoiser(memgen.data.gmm(n=40, d=3, n_train=20, seed=3).train, dtype=torch.float64)


def _brute_replicates(samples, train, threshold=1 / 3, cos_threshold=0.6):
    s, y = samples.reshape(len(samples), -1).astype(np.float64), train.reshape(len(train), -1).astype(np.float64)
    d = np.sqrt(((s[:, None] - y[None]) ** 2).sum(-1))
    d.sort(1)
    cos = (s / np.linalg.norm(s, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    return np.mean(d[:, 0] / d[:, 1] < threshold), np.mean(cos.max(1) > cos_threshold)


def _check_outputs(out, samples_expected):
    for name in ("gap.csv", "optimal_distance.csv", "trajectories.csv", "replicates.csv", "replicates_per_sample.csv",
                 "fidelity.csv", "audit.png", "report.md", "summary.json", "record.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    samples = np.load(out / "samples.npy")
    assert samples.shape[0] == samples_expected
    return summary, samples


def test_parse_data_spec(tmp_path):
    assert parse_data_spec("gmm:n=40,d=3") == ("gmm", {"n": 40, "d": 3})
    assert parse_data_spec("mixture:parts=[\"mondrian\", \"random_ink\"],size=8") == (
        "mixture", {"parts": ["mondrian", "random_ink"], "size": 8})
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    assert parse_data_spec(str(tmp_path / "x.npy")) == ("from_array", {"path_or_array": str(tmp_path / "x.npy")})
    assert parse_data_spec(str(tmp_path)) == ("image_folder", {"path": str(tmp_path)})
    for bad in ("nothing", "gmm:n", ""):
        with pytest.raises(ValueError, match="data"):
            parse_data_spec(bad)
    with pytest.raises(ValueError, match="val"):
        load_data(str(tmp_path / "x.npy"))                     # all points train: no validation part, no --val


def test_audit_of_a_tiny_trained_run(tmp_path, capsys):
    """A class-conditional run: probes denoised with their own labels, samples drawn with training labels."""
    from neural import load_config, train

    cfg = load_config(None, ["data.params={n = 48, d = 3}", "model.params={width = 16, depth = 1}", "train.steps=6",
                             "model.class_conditional=true",
                             "train.batch_size=8", "train.save_every=6", "train.progress=false",
                             "measure.enabled=false", "train.threads=1"])
    train(cfg, tmp_path / "run")
    assert main(["audit", str(tmp_path / "run"), "--out", str(tmp_path / "a")] + TINY) == 0
    assert "replicate_fraction" in capsys.readouterr().out
    summary, samples = _check_outputs(tmp_path / "a", 12)
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    data = memgen.data.load("gmm", n=48, d=3)
    rep, cos = _brute_replicates(samples, data.x[record["train_index"]].numpy())
    assert summary["replicate_fraction"] == pytest.approx(rep)
    assert summary["cosine_score"] == pytest.approx(cos)
    by_class = read_csv(tmp_path / "a" / "replicates.csv")
    assert [r["group"] for r in by_class] == ["all", 0, 1]
    gap = read_csv(tmp_path / "a" / "gap.csv")
    assert sorted({r["model"] for r in gap}) == ["optimal", "run"]
    assert len(read_csv(tmp_path / "a" / "optimal_distance.csv")) == 2 * 3


def test_audit_of_a_random_diffusers_model(tmp_path):
    pytest.importorskip("diffusers")
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    with torch.no_grad():                                  # eps_hat = 0, so D(x, sigma) = x exactly
        unet.conv_out.weight.zero_()
        unet.conv_out.bias.zero_()
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=100)).save_pretrained(tmp_path / "pipe")
    x = np.random.default_rng(0).uniform(-1, 1, size=(30, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "a"
    assert main(["audit", str(tmp_path / "pipe"), "--train", f"from_array:path_or_array={tmp_path / 'x.npy'},n_train=20",
                 "--out", str(out)] + TINY) == 0
    summary, samples = _check_outputs(out, 12)
    assert (out / "gallery.png").exists()
    # D = x: the error at sigma is sigma^2 times the same noise energy at every sigma (common random numbers)
    rows = [r for r in read_csv(out / "gap.csv") if r["model"] == "pipe"]
    for col in ("e_train", "e_val"):
        ratio = [r[col] / r["sigma"] ** 2 for r in rows]
        assert np.allclose(ratio, ratio[0], rtol=1e-4)
    data = memgen.data.from_array(str(tmp_path / "x.npy"), n_train=20)
    rep, cos = _brute_replicates(samples, data.train.numpy())
    assert summary["replicate_fraction"] == pytest.approx(rep)
    assert summary["cosine_score"] == pytest.approx(cos)


def test_audit_of_the_optimal_denoiser_by_factory(tmp_path):
    from figures.audit import load_model

    model, own, kind = load_model("test_audit:optimal_factory")
    assert kind == "factory" and own is None
    data = load_data(GMM)
    s = AuditSettings(probes=8, sigmas=3, samples=16, trajectories=16, steps=18, n_reference=50, n_boot=50)
    summary = audit(model, data, tmp_path, settings=s, progress=False)
    # the model IS the optimal denoiser: zero distance, the same errors, and its samples copy training points
    assert summary["optimal_distance_train_at_smallest_sigma"] == pytest.approx(0, abs=1e-6)
    gap = read_csv(tmp_path / "gap.csv")
    for a, b in zip(gap.where(model="model"), gap.where(model="optimal")):
        assert a["e_train"] == pytest.approx(b["e_train"], rel=1e-5)
    assert summary["replicate_fraction"] == 1.0
    assert summary["trajectory_distance_train_median"] < summary["trajectory_distance_val_median"]
    # the validation control: exact trajectories (fine enough steps) stay typical of the noisy training data;
    # noisy validation points part from it
    control = read_csv(tmp_path / "typicality_control.csv")
    assert len(control) == 18 and all(r["n"] == 16 for r in control)
    assert summary["parting_sigma_model"] is None
    assert summary["parting_sigma_validation"] is not None
