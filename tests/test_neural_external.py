"""Adapters of foreign networks (neural/external.py) against formulas written out here, and against the
empirical denoiser when the foreign network returns its exact eps / v / x0."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import json
from types import SimpleNamespace

from memgen.noise import ddpm_linear_alpha_bar
from neural.diffusers_folder import load_diffusers, unet_parameters
from neural.external import (FunctionDenoiser, PreconditionedDenoiser, VPDiscreteDenoiser, edm_denoiser,
                             from_diffusers)
from toymodels import EmpiricalDenoiser

T = 1000
AB = ddpm_linear_alpha_bar(T)                                   # alpha_bar_t, t = 0..T-1
LOG_SIG = np.log(np.sqrt((1 - AB.numpy()) / AB.numpy()))      # log sigma_t of each step


def t_of_sigma(sigma):
    """Fractional timestep: linear interpolation of t in log sigma (written independently of memgen)."""
    return np.interp(np.log(np.asarray(sigma, dtype=np.float64)), LOG_SIG, np.arange(T))


def sigma_of_t(t, log_sig=LOG_SIG):
    return np.exp(np.interp(np.asarray(t, dtype=np.float64), np.arange(len(log_sig)), log_sig))


class Oracle(nn.Module):
    """Returns the exact eps, v or x0 of the empirical denoiser at the VP state it is given, for the schedule
    ``alpha_bar`` (default: DDPM's linear schedule in float64)."""

    def __init__(self, emp, prediction, alpha_bar=AB):
        super().__init__()
        self.emp, self.prediction = emp, prediction
        ab = torch.as_tensor(alpha_bar).double().numpy()
        self.log_sig = np.log(np.sqrt((1 - ab) / ab))
        self.weight = nn.Parameter(torch.zeros(()))             # a network has parameters (its device)
        self.seen_t = None

    def forward(self, x_vp, t, class_labels=None):
        self.seen_t = t.detach().double().clone()
        s = torch.as_tensor(sigma_of_t(t.detach().numpy(), self.log_sig), dtype=torch.float64)
        x = x_vp.double() * (1 + s[:, None] ** 2).sqrt()
        d = self.emp(x, s).double()
        a = (1 / (1 + s ** 2))[:, None]
        eps = (x - d) / s[:, None]
        v = a.sqrt() * eps - (1 - a).sqrt() * d
        return {"epsilon": eps, "v_prediction": v, "sample": d}[self.prediction].float()


@pytest.fixture
def emp():
    g = torch.Generator().manual_seed(1)
    return EmpiricalDenoiser(torch.randn(6, 3, generator=g, dtype=torch.float64), dtype=torch.float64)


def close(out, ref, sig, tol=1e-5):
    """float32 tolerance: relative to the input scale, which grows with sigma."""
    return bool(((out.double() - ref.double()).abs() <= tol * (1 + sig.reshape(-1, 1).double())).all())


def _queries(seed=2, b=8):
    g = torch.Generator().manual_seed(seed)
    sig = torch.exp(torch.empty(b, dtype=torch.float64).uniform_(math.log(0.05), math.log(50), generator=g))
    x = torch.randn(b, 3, generator=g, dtype=torch.float64) * 1.5 + sig[:, None] * torch.randn(b, 3, generator=g,
                                                                                                 dtype=torch.float64)
    return x, sig


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_vp_oracle_equals_empirical(emp, prediction):
    x, sig = _queries()
    den = VPDiscreteDenoiser(Oracle(emp, prediction), schedule=AB, prediction=prediction)
    out = den(x, sig)
    ref = emp(x, sig)
    assert close(out, ref, sig)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_vp_nearest_oracle_exact_at_schedule_sigmas(emp, prediction):
    steps = torch.tensor([3, 50, 400, 900])
    sig = torch.as_tensor(np.exp(LOG_SIG[steps.numpy()]))
    x = torch.randn(4, 3, dtype=torch.float64)
    net = Oracle(emp, prediction)
    out = VPDiscreteDenoiser(net, schedule=AB, prediction=prediction, timestep="nearest")(x, sig)
    assert torch.equal(net.seen_t, steps.double())
    assert close(out, emp(x, sig), sig)


def test_timestep_modes_against_brute_force():
    den_i = VPDiscreteDenoiser(nn.Linear(1, 1), schedule=AB)
    den_n = VPDiscreteDenoiser(nn.Linear(1, 1), schedule=AB, timestep="nearest")
    rng = np.random.default_rng(0)
    sig = np.exp(rng.uniform(LOG_SIG[0], LOG_SIG[-1], 200))
    t_i = den_i.timestep(torch.as_tensor(sig)).numpy()
    assert np.allclose(t_i, t_of_sigma(sig), atol=1e-9)
    nearest = np.abs(LOG_SIG[None, :] - np.log(sig)[:, None]).argmin(1)
    assert np.array_equal(den_n.timestep(torch.as_tensor(sig)).numpy(), nearest)
    # interpolation tells the network the true sigma; nearest is off by |log sigma_t - log sigma| <= half a step
    assert float(den_i.label_error(sig).max()) < 1e-9
    err = den_n.label_error(sig).numpy()
    assert np.allclose(err, np.abs(LOG_SIG[nearest] - np.log(sig)), atol=1e-12)
    assert err.max() <= np.diff(LOG_SIG).max() / 2 + 1e-12
    # clamped beyond the schedule's range
    assert float(den_i.timestep(torch.tensor([1e-5, 1e5]))[0]) == 0 and float(den_i.timestep(torch.tensor([1e5]))) == T - 1


class RawEDMOracle(nn.Module):
    """The raw EDM network F that makes c_skip x + c_out F(c_in x, log(sigma)/4) the empirical denoiser."""

    def __init__(self, emp, sd):
        super().__init__()
        self.emp, self.sd = emp, sd
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, inp, c_noise, class_labels=None):
        s = torch.exp(4 * c_noise.double())[:, None]
        x = inp.double() * (s ** 2 + self.sd ** 2).sqrt()
        c_skip = self.sd ** 2 / (s ** 2 + self.sd ** 2)
        c_out = s * self.sd / (s ** 2 + self.sd ** 2).sqrt()
        return ((self.emp(x, s[:, 0]).double() - c_skip * x) / c_out).float()


class Preconditioned(nn.Module):
    def __init__(self, emp):
        super().__init__()
        self.emp = emp
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma, class_labels=None):
        return self.emp(x.double(), sigma.double()).float()


def test_edm_and_preconditioned_and_function_oracles(emp):
    x, sig = _queries(seed=3)
    ref = emp(x, sig)
    assert close(edm_denoiser(RawEDMOracle(emp, 1.3), sigma_data=1.3)(x, sig), ref, sig)
    assert close(PreconditionedDenoiser(Preconditioned(emp))(x, sig), ref, sig)
    assert torch.allclose(FunctionDenoiser(lambda z, s: emp(z, s))(x, sig), ref, atol=1e-12)
    eps_fn = FunctionDenoiser(lambda z, s: (z - emp(z, s)) / s[:, None], output="eps")
    assert torch.allclose(eps_fn(x, sig), ref, atol=1e-10)


def _unet(num_class_embeds=None, out_channels=1):
    pytest.importorskip("diffusers")
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=out_channels, block_out_channels=(8, 16),
                       layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=num_class_embeds).eval()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_diffusers_unet_against_the_conversion_formulas(prediction):
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler

    unet = _unet()
    den = from_diffusers(unet, DDPMScheduler(num_train_timesteps=T, prediction_type=prediction))
    assert den.event_shape == (1, 8, 8)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 8, 8, generator=g)
    sig = torch.tensor([0.03, 0.9, 20.0])
    t = torch.as_tensor(t_of_sigma(sig.numpy()), dtype=torch.float32)
    s = sig.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        o = unet(x / (1 + s ** 2).sqrt(), t).sample
    expected = {"epsilon": x - s * o,                                    # eps:    y = x - sigma eps
                "v_prediction": (x - s * (1 + s ** 2).sqrt() * o) / (1 + s ** 2),   # v = sqrt(a) eps - sqrt(1-a) y
                "sample": o}[prediction]
    with torch.no_grad():
        assert torch.allclose(den(x, sig), expected, atol=1e-5, rtol=1e-5)


def test_learned_variance_output_uses_its_first_half():
    pytest.importorskip("diffusers")
    unet = _unet(out_channels=2)                            # IDDPM-style [eps, variance] output
    den = from_diffusers(unet, alphas_cumprod=AB)
    x, sig = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 4.0])
    t = torch.as_tensor(t_of_sigma(sig.numpy()), dtype=torch.float32)
    s = sig.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        expected = x - s * unet(x / (1 + s ** 2).sqrt(), t).sample[:, :1]
        assert torch.allclose(den(x, sig), expected, atol=1e-5)


def test_diffusers_class_labels_and_bad_inputs():
    pytest.importorskip("diffusers")
    from diffusers import DDPMScheduler

    unet = _unet(num_class_embeds=3)
    sched = DDPMScheduler(num_train_timesteps=T)
    den = from_diffusers(unet, sched, timestep="nearest")
    x, sig, lab = torch.randn(2, 1, 8, 8), torch.tensor([0.5, 2.0]), torch.tensor([2, 0])
    t = torch.as_tensor(np.abs(LOG_SIG[None] - np.log(sig.numpy())[:, None]).argmin(1), dtype=torch.float32)
    with torch.no_grad():
        expected = x - sig.reshape(-1, 1, 1, 1) * unet(x / (1 + sig.reshape(-1, 1, 1, 1) ** 2).sqrt(), t,
                                                      class_labels=lab).sample
        assert torch.allclose(den.with_labels(lab)(x, sig), expected, atol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        den(x, sig)
    with pytest.raises(ValueError, match="scheduler"):
        from_diffusers(unet, sched, alphas_cumprod=AB)
    with pytest.raises(ValueError, match="prediction"):
        from_diffusers(unet, sched, prediction_type="x0")
    with pytest.raises(ValueError, match="timestep"):
        from_diffusers(unet, sched, timestep="round")
    with pytest.raises(ValueError, match="schedule"):
        VPDiscreteDenoiser(unet, schedule=AB.flip(0))
    with pytest.raises(ValueError, match="output"):
        FunctionDenoiser(lambda z, s: z, output="v")


def test_diffusers_condition_model_with_extra_inputs():
    pytest.importorskip("diffusers")
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                layers_per_block=1, cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).eval()
    h = torch.randn(1, 4, 8)
    den = from_diffusers(unet, alphas_cumprod=AB, extra={"encoder_hidden_states": h})
    x, sig = torch.randn(3, 1, 8, 8), torch.tensor([0.2, 1.0, 5.0])
    t = torch.as_tensor(t_of_sigma(sig.numpy()), dtype=torch.float32)
    s = sig.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        expected = x - s * unet(x / (1 + s ** 2).sqrt(), t, encoder_hidden_states=h.expand(3, 4, 8)).sample
        assert torch.allclose(den(x, sig), expected, atol=1e-5)


def test_save_pretrained_round_trip(tmp_path):
    pytest.importorskip("diffusers")
    from diffusers import DDIMScheduler, DDPMPipeline

    unet = _unet()
    sched = DDIMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path / "pipe")
    unet.save_pretrained(tmp_path / "unet_only")
    x, sig = torch.randn(4, 1, 8, 8), torch.tensor([0.01, 0.3, 3.0, 60.0])
    with torch.no_grad():
        ref = from_diffusers(unet, sched)(x, sig)
        assert torch.allclose(load_diffusers(tmp_path / "pipe")(x, sig), ref, atol=1e-6)
        loaded = load_diffusers(tmp_path / "unet_only", scheduler=tmp_path / "pipe" / "scheduler")
        assert loaded.prediction == "v_prediction"
        assert torch.allclose(loaded(x, sig), ref, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="folder"):
        load_diffusers(tmp_path / "missing")
    with pytest.raises(ValueError, match="scheduler"):
        load_diffusers(tmp_path / "unet_only")


# --- the scheduler's float32 alphas_cumprod, eval mode, networks without parameters, hostile configs ----------

BETAS32 = torch.linspace(1e-4, 0.02, T, dtype=torch.float32)
AB32 = torch.cumprod(1.0 - BETAS32, dim=0)                    # diffusers' DDPMScheduler: float32, used as it is
SIG32 = ((1 - AB32.double()) / AB32.double()).sqrt()           # the schedule's sigmas, exactly as training saw them


def _adapters(net, schedule=AB32, betas=BETAS32):
    """The routes from an eps network of a float32 diffusers schedule to a denoiser."""
    config = SimpleNamespace(prediction_type="epsilon")
    return {"scheduler": lambda: from_diffusers(net, SimpleNamespace(betas=betas, alphas_cumprod=schedule,
                                                                     config=config)),
            "scheduler_betas_only": lambda: from_diffusers(net, SimpleNamespace(betas=betas, config=config)),
            "alphas_cumprod": lambda: from_diffusers(net, alphas_cumprod=schedule),
            "vp_discrete": lambda: VPDiscreteDenoiser(net, schedule=schedule)}


@pytest.mark.parametrize("route", list(_adapters(None)))
def test_float32_schedule_oracle_equals_empirical_at_every_step(emp, route):
    """Every sigma_t of the schedule: ||D - D*|| <= 1e-5 ||x - D*|| (the noise removed) + 3 float32 ulps of ||x||.
    Recomputing alpha_bar from the betas in float64 (the old scheduler route) misses it by 2.3x near t = 0."""
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(T, 3, generator=g, dtype=torch.float64)
    x = emp.train_points[torch.arange(T) % 6] + SIG32[:, None] * noise
    x = x.float().double()                                    # what the float32 network sees, exactly
    den = _adapters(Oracle(emp, "epsilon", alpha_bar=AB32))[route]()
    out, ref = den(x, SIG32).double(), emp(x, SIG32)
    bound = 1e-5 * (x - ref).norm(dim=1) + 3 * 2 ** -23 * x.norm(dim=1)
    assert float(((out - ref).norm(dim=1) / bound).max()) <= 1
    assert den.sigma_range == (float(SIG32[0]), float(SIG32[-1]))


def test_load_diffusers_keeps_the_float32_alphas_cumprod(tmp_path):
    pytest.importorskip("diffusers")
    from diffusers import DDPMPipeline, DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=T)
    DDPMPipeline(unet=_unet(), scheduler=sched).save_pretrained(tmp_path / "pipe")
    den = load_diffusers(tmp_path / "pipe")
    assert sched.alphas_cumprod.dtype == torch.float32
    assert torch.equal(den.alpha_bar, sched.alphas_cumprod.double())
    assert torch.equal(den.alpha_bar, AB32.double())


class Dropout(nn.Module):
    """A network whose output in training mode is random."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, noise_label, class_labels=None):
        return self.drop(self.lin(x))


VP_ROUTES = [lambda n: VPDiscreteDenoiser(n, schedule=AB), lambda n: from_diffusers(n, alphas_cumprod=AB)]


@pytest.mark.parametrize("make", VP_ROUTES + [PreconditionedDenoiser, edm_denoiser, FunctionDenoiser])
def test_dropout_network_gives_one_answer(make):
    torch.manual_seed(0)
    net = Dropout()
    den = make(net)
    x = torch.randn(64, 3)
    a, b = den(x, 0.5), den(x, 0.5)
    assert not net.training and torch.equal(a, b)


@pytest.mark.parametrize("make", VP_ROUTES + [PreconditionedDenoiser, edm_denoiser])
def test_network_without_parameters_is_refused(make):
    with pytest.raises(ValueError, match="net: Identity has no parameters.*FunctionDenoiser"):
        make(nn.Identity())


def _write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _folder(tmp_path, unet=None, scheduler=None):
    """A diffusers pipeline folder of config files only (nothing to build)."""
    root = tmp_path / "pipe"
    _write_json(root / "model_index.json", {"_class_name": "DDPMPipeline"})
    _write_json(root / "unet" / "config.json", {"_class_name": "UNet2DModel", "block_out_channels": [8, 16],
                                                "layers_per_block": 1, **(unet or {})})
    _write_json(root / "scheduler" / "scheduler_config.json", {"_class_name": "DDPMScheduler",
                                                               "num_train_timesteps": 1000, **(scheduler or {})})
    return root


def test_hostile_configs_refused_before_building(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_diffusers(name, *args, **kw):                # refused before diffusers builds (or is even imported)
        if name.startswith("diffusers"):
            raise AssertionError("diffusers reached")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_diffusers)
    huge = _folder(tmp_path / "a", unet={"block_out_channels": [8192, 8192], "layers_per_block": 2})
    with pytest.raises(ValueError, match=r"unet/config.json: the model has about .* parameters, more than "
                                         r"max_parameters=2e\+09.*--max-parameters"):
        load_diffusers(huge)
    steps = _folder(tmp_path / "b", scheduler={"num_train_timesteps": 10 ** 9})
    with pytest.raises(ValueError, match=r"scheduler_config.json: num_train_timesteps must be an integer in "
                                         r"\[2, 1000000\].*got 1000000000"):
        load_diffusers(steps)
    for bad, match in (({"layers_per_block": -1}, "layers_per_block must be a positive integer"),
                       ({"block_out_channels": "big"}, "block_out_channels must be"),
                       ({"up_block_types": ["UpBlock2D"]}, r"up_block_types must be a list of 2 block type names"),
                       ({"in_channels": 2.5}, "in_channels must be a positive integer")):
        with pytest.raises(ValueError, match="config.json: " + match):
            load_diffusers(_folder(tmp_path / "c", unet=bad))
    damaged = _folder(tmp_path / "d")
    (damaged / "unet" / "config.json").write_text("{\"_class_name\": ")
    with pytest.raises(ValueError, match="unet/config.json: line 1 is not valid JSON"):
        load_diffusers(damaged)
    with pytest.raises(ValueError, match="scheduler: no scheduler_config.json .*--scheduler"):
        load_diffusers(_folder(tmp_path / "e") / "unet")
    with pytest.raises(ValueError, match="max_parameters"):
        load_diffusers(_folder(tmp_path / "f"), max_parameters=0)


UNET_CONFIGS = [                                  # UNet2DModel arguments beyond the small UNet of _unet()
    dict(down_block_types=("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"), block_out_channels=(16, 32, 48),
         up_block_types=("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"), layers_per_block=2),
    dict(down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
         block_out_channels=(32, 64), attention_head_dim=16, in_channels=3, out_channels=3, num_class_embeds=10),
    dict(block_out_channels=(8, 16, 24), down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
         resnet_time_scale_shift="scale_shift", time_embedding_type="fourier", add_attention=False,
         downsample_type="resnet", upsample_type="resnet"),
    dict(mid_block_type=None, time_embedding_dim=20, layers_per_block=3),
    dict(down_block_types=("AttnDownBlock2D",) * 3, up_block_types=("AttnUpBlock2D",) * 3, attention_head_dim=None,
         block_out_channels=(8, 16, 16), downsample_type="resnet", upsample_type="resnet"),
]


def test_parameter_estimate_against_built_unets(tmp_path):
    """The estimate from the config alone lies within 3% of the parameters of the built UNet2DModel, with and
    without attention, class embeddings, scale-shift time projections, ResNet resampling, no middle block."""
    pytest.importorskip("diffusers")
    from diffusers import UNet2DModel

    base = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                norm_num_groups=4)
    for unet in (_unet(), _unet(out_channels=2), *(UNet2DModel(**{**base, **kw}) for kw in UNET_CONFIGS)):
        config = json.loads(json.dumps(dict(unet.config)))
        actual = sum(p.numel() for p in unet.parameters())
        assert 0.97 * actual <= unet_parameters(config) <= 1.03 * actual, (config, actual)
    from diffusers import DDPMPipeline, DDPMScheduler

    DDPMPipeline(unet=_unet(), scheduler=DDPMScheduler()).save_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match="max_parameters=1e\\+04"):
        load_diffusers(tmp_path / "p", max_parameters=10 ** 4)
    assert load_diffusers(tmp_path / "p", max_parameters=10 ** 5).timesteps == 1000
