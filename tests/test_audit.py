"""``memgen audit`` end to end: a tiny trained run, a random diffusers model, and the optimal denoiser itself."""
import contextlib
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import memgen.data
from compare import read_csv
from lab.audit import AuditSettings, audit, load_data
from lab.audit.inputs import parse_data_spec
from lab.cli import main
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
    from lab.audit import load_model

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


# --- a foreign model's audit: its schedule's range, the absolute gap, bad options and files ------------------

def memorizer_factory():
    """``module:factory`` target: the exact empirical eps of the GMM training set through the diffusers route
    (a scheduler-like object with diffusers' float32 DDPM schedule)."""
    from types import SimpleNamespace

    from neural.external import from_diffusers
    from test_neural_external import AB32, BETAS32, Oracle

    emp = EmpiricalDenoiser(memgen.data.gmm(n=40, d=3, n_train=20, seed=3).train, dtype=torch.float64)
    sched = SimpleNamespace(betas=BETAS32, alphas_cumprod=AB32, config=SimpleNamespace(prediction_type="epsilon"))
    return from_diffusers(Oracle(emp, "epsilon", alpha_bar=AB32), sched)


def no_parameters_factory():
    return torch.nn.Identity()


class DropoutDenoiser(memgen.Denoiser):
    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x, sigma):
        return self.drop(torch.as_tensor(x))


def dropout_factory():
    return DropoutDenoiser()


def test_memorizer_audited_within_its_schedule_ends_on_training_points(tmp_path):
    """DDPM's smallest sigma is 0.0100005: sampling to 0.002 left the samples 1.7e-2 from their training points."""
    from lab.audit import load_model
    from test_neural_external import SIG32

    model, _, _ = load_model("test_audit:memorizer_factory")
    data = load_data(GMM)
    s = AuditSettings(probes=8, sigmas=3, samples=16, trajectories=4, steps=18, n_reference=50, n_boot=50)
    summary = audit(model, data, tmp_path, settings=s, progress=False)
    samples = torch.as_tensor(np.load(tmp_path / "samples.npy")).double()
    nearest = torch.cdist(samples, data.train.double()).min(1).values
    assert float(nearest.max()) < 1e-3
    assert summary["sigma_smallest"] == pytest.approx(float(SIG32[0]), rel=1e-12)
    assert summary["trajectory_sigma_last"] == pytest.approx(float(SIG32[0]), rel=1e-12)
    # the report leads with the absolute gap (E_train ~ 0 makes the relative one huge and meaningless)
    rows = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| generalization gap E_val - E_train")
    gap = read_csv(tmp_path / "gap.csv").where(model="model")
    first = min(gap, key=lambda r: r["sigma"])
    assert summary["abs_gap_model_at_smallest_sigma"] == pytest.approx(first["e_val"] - first["e_train"], rel=1e-6)
    assert [k for k in summary if "gap" in k][0] == "abs_gap_model_at_smallest_sigma"


OPTIONS = {"--probes": 1, "--sigmas": 1, "--samples": 1, "--trajectories": 1, "--steps": 1, "--seed": 0,
           "--threads": 0, "--max-parameters": 1}


@settings(max_examples=40, deadline=None)
@given(option=st.sampled_from(sorted(OPTIONS)), below=st.integers(1, 10 ** 6))
def test_audit_options_below_their_minimum_are_named(option, below):
    value = OPTIONS[option] - below
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["audit", "test_audit:optimal_factory", "--train", GMM, option, str(value)]) == 2
    assert err.getvalue() == f"memgen: error: {option}: expected an integer >= {OPTIONS[option]}, got {value}\n"


def test_audit_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="probes: expected an integer >= 1, got -3"):
        AuditSettings(probes=-3)
    with pytest.raises(ValueError, match="sigma_min: must be a finite number > 0"):
        AuditSettings(sigma_min=0)
    with pytest.raises(ValueError, match="sigma_min, sample_sigma_min: must not exceed sigma_max"):
        AuditSettings(sigma_min=100)
    assert AuditSettings(probes=8.0).probes == 8 and isinstance(AuditSettings(probes=8.0).probes, int)


def _fake_run(tmp_path, train_index):
    from neural import load_config
    from neural.config import dump_toml

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(dump_toml(load_config(None, ["data.params={n = 48, d = 3}"])))
    (run / "record.json").write_text(json.dumps({"train_index": train_index}))
    return run


@pytest.mark.parametrize("index, match", [([-1, 2], "train_index holds -1, outside \\[0, 47\\]"),
                                          ([0, 48], "train_index holds 48, outside \\[0, 47\\]"),
                                          ([0, 0], "train_index repeats"), ([], "train_index must be a non-empty"),
                                          ([0.5], "train_index must be a non-empty list of integers")])
def test_run_record_with_a_bad_train_index_is_refused(tmp_path, index, match):
    from lab.audit.inputs import run_data

    run = _fake_run(tmp_path, index)
    with pytest.raises(ValueError, match="record.json: " + match):
        run_data(run)


def test_audit_one_line_errors(tmp_path, capsys):
    run = _fake_run(tmp_path, [-1, 2])
    assert main(["audit", str(run), "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip().endswith("record.json: train_index holds -1, outside [0, 47] (the data "
                                                    "set has 48 points)")
    assert main(["audit", "test_audit:no_parameters_factory", "--train", GMM]) == 2
    assert capsys.readouterr().err.startswith("memgen: error: net: Identity has no parameters")
    assert main(["audit", "test_audit:optimal_factory", "--train", GMM, "--scheduler", str(tmp_path)]) == 2
    assert "--scheduler, --max-parameters): apply to a diffusers folder only" in capsys.readouterr().err
    # grayscale images with the FID: refused before the audit starts (no output folder)
    np.save(tmp_path / "gray.npy", np.zeros((30, 1, 8, 8), np.float32))
    out = tmp_path / "fid"
    assert main(["audit", "test_audit:optimal_factory", "--train", f"from_array:path_or_array={tmp_path / 'gray.npy'},"
                 "n_train=20", "--fid-weights", str(tmp_path / "w.pth"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("memgen: error: fid_weights (--fid-weights): the FID needs RGB images "
                                       "[3, H, W], the data are [1, 8, 8]; leave the FID out\n")
    assert not out.exists()


def test_factory_model_is_put_in_eval_mode():
    from lab.audit import load_model

    model, _, _ = load_model("test_audit:dropout_factory")
    x = torch.ones(256, 3)
    assert not model.training and torch.equal(model(x, 1.0), x)


def test_unet_folder_with_scheduler_option(tmp_path, capsys):
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler

    from lab.audit import load_model
    from test_neural_external import AB32, _unet

    _unet().save_pretrained(tmp_path / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(tmp_path / "sched")
    assert main(["audit", str(tmp_path / "unet"), "--train", GMM]) == 2
    assert "pass scheduler= (memgen audit: --scheduler FOLDER)" in capsys.readouterr().err
    model, _, kind = load_model(str(tmp_path / "unet"), scheduler=str(tmp_path / "sched"))
    assert kind == "diffusers folder" and torch.equal(model.alpha_bar, AB32.double())
    assert main(["audit", str(tmp_path / "unet"), "--scheduler", str(tmp_path / "sched"), "--max-parameters", "1000",
                 "--train", GMM]) == 2
    assert "max_parameters=1e+03" in capsys.readouterr().err
