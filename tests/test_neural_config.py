"""Run configuration: TOML round trip, overrides, messages naming the key; checkpoint grid; data order."""
import math

import numpy as np
import pytest

from neural.checkpoint import checkpoint_steps
from neural.config import Config, apply_overrides, dump_toml, load_config, parse_value
from neural.step import DataOrder, derived_seed


def test_toml_round_trip(tmp_path):
    cfg = load_config(None, ["data.params={n = 100, d = 3}", "model.params.width=64", "train.lr=4e-4",
                             'train.betas=[0.5, 0.9]', "measure.sampler=euler", "train.compile=aot_eager"])
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(cfg))
    back = load_config(path)
    assert back == cfg
    assert back.train.lr == 4e-4 and back.model.params == {"width": 64} and back.data.params == {"n": 100, "d": 3}


def test_overrides_are_read_as_toml_values():
    assert parse_value("1e-3") == 1e-3 and parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value("gmm") == "gmm" and parse_value('"a b"') == "a b"
    cfg = apply_overrides(Config(), ["model.preset=unet-tiny", "model.params.channel_mult=[1,2]", "train.steps=7"])
    assert cfg.model.params["channel_mult"] == [1, 2] and cfg.train.steps == 7


@pytest.mark.parametrize("override,key", [
    ("train.lr=-1", "train.lr"),
    ("train.lr=abc", "train.lr"),
    ("train.steps=1.5", "train.steps"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.optimizer=rmsprop", "train.optimizer"),
    ("train.ema_decay=1.0", "train.ema_decay"),
    ("train.betas=[0.9]", "train.betas"),
    ("train.loss=ddpm", "train.loss"),            # needs model.precond = 'vp'
    ("train.precision=fp16", "train.precision"),
    ("train.device=gpu", "train.device"),
    ("train.lrr=1", "train.lrr"),
    ("data.name=nope", "data.name"),
    ("data.subset=-1", "data.subset"),
    ("model.preset=nope", "model.preset"),
    ("model.params.foo=1", "model.params.foo"),
    ("model.precond=ve", "model.precond"),
    ("model.schedule=quadratic", "model.schedule"),
    ("measure.sigma_min=0", "measure.sigma_min"),
    ("measure.sampler=dpm", "measure.sampler"),
    ("measure.error=nonsense", "measure.error"),
    ("measure.probes=0", "measure.probes"),
    ("optim.lr=1", "optim.lr"),
    ("train.p_mean=nan", "train.p_mean"),                 # non-finite numbers: training would give NaN weights
    ("train.weight_decay=inf", "train.weight_decay"),
    ("train.lr=nan", "train.lr"),
    ("model.sigma_data=inf", "model.sigma_data"),
    ("measure.sigma_max=inf", "measure.sigma_max"),
    ("train.momentum=-0.1", "train.momentum"),
    ("train.grad_clip=-1", "train.grad_clip"),
    ("train.threads=-1", "train.threads"),
    ("measure.metrics=[1]", "measure.metrics"),
    ('measure.metrics=["gap", "gap"]', "measure.metrics"),
])
def test_bad_values_are_rejected_naming_the_key(override, key):
    with pytest.raises(ValueError) as err:
        load_config(None, [override])
    assert str(err.value).startswith(key + ":")


def test_bad_toml_file_and_bad_network_argument(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlr = = 3\n")
    with pytest.raises(ValueError, match="bad.toml"):
        load_config(path)
    from neural.presets import model_from_config
    cfg = load_config(None, ["model.preset=unet-tiny", "model.params.num_groups=5"])
    with pytest.raises(ValueError, match=r"^model\.params\.num_groups"):
        model_from_config(cfg.model, (3, 8, 8))


def test_checkpoint_grid_is_log_spaced():
    steps = checkpoint_steps(1000, per_decade=4, first=10)
    assert steps[0] == 10 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert steps == [round(10 * 10 ** (k / 4)) for k in range(9)]
    ratios = np.diff(np.log10(steps))
    np.testing.assert_allclose(ratios, 0.25, atol=0.02)
    assert set(checkpoint_steps(500, per_decade=4, first=10)) <= set(steps) | {500}   # extending keeps the grid
    assert checkpoint_steps(7, per_decade=8, first=10) == [7]


@pytest.mark.parametrize("n,batch", [(10, 4), (7, 7), (5, 12)])
def test_data_order_visits_every_point_once_per_epoch(n, batch):
    order = DataOrder(n, batch, seed=3)
    steps = math.ceil(4 * n / batch)
    stream = np.concatenate([order.indices(k) for k in range(steps)])
    assert all(len(order.indices(k)) == batch for k in range(steps))
    for e in range(3):
        assert sorted(stream[e * n:(e + 1) * n]) == list(range(n))
    fresh = DataOrder(n, batch, seed=3)
    np.testing.assert_array_equal(fresh.indices(steps - 1), order.indices(steps - 1))    # a function of the step
    other = np.concatenate([DataOrder(n, batch, seed=4).indices(k) for k in range(steps)])
    assert not np.array_equal(other, stream)


def test_derived_seeds_are_distinct_and_reproducible():
    seeds = {derived_seed(0, k) for k in range(1000)} | {derived_seed(1, k) for k in range(1000)}
    assert len(seeds) == 2000 and derived_seed(5, 7, 1) == derived_seed(5, 7, 1) < 2 ** 63


def test_misspelled_keys_and_values_get_the_closest_name():
    for override, message in (("train.stpes=5", "train.stpes: unknown setting; did you mean train.steps?"),
                              ("trian.steps=5", "trian.steps: unknown config section; did you mean train.steps?"),
                              ("train.optimizer=adma", "train.optimizer: unknown value 'adma'; did you mean adam?"),
                              ("model.params.widht=8", "model.params.widht: not an argument of the network; "
                                                       "did you mean width?")):
        with pytest.raises(ValueError) as err:
            load_config(None, [override])
        assert str(err.value) == message


def test_every_setting_has_a_one_line_help_and_a_default_that_validates():
    import dataclasses

    cfg = Config()
    for section in ("data", "model", "train", "measure"):
        for f in dataclasses.fields(getattr(cfg, section)):
            text = f.metadata.get("help", "")
            assert text and "\n" not in text, f"{section}.{f.name}"
    assert load_config(None) == cfg and cfg.train.threads == 1


def test_a_registry_entry_is_the_one_place_an_option_is_added(monkeypatch, tmp_path):
    """An optimizer added to neural.optim.OPTIMIZERS is accepted by validation and used by training."""
    import torch

    from neural.optim import OPTIMIZERS
    from neural.training import build_run, load_training_data

    with pytest.raises(ValueError, match="^train.optimizer"):
        load_config(None, ["train.optimizer=rmsprop"])
    monkeypatch.setitem(OPTIMIZERS, "rmsprop", lambda params, t: torch.optim.RMSprop(params, lr=t.lr))
    cfg = load_config(None, ["train.optimizer=rmsprop", "train.lr=0.25", "data.params={n = 8, d = 2}"])
    run = build_run(cfg, load_training_data(cfg, torch.device("cpu")), torch.device("cpu"))
    assert isinstance(run.opt, torch.optim.RMSprop) and run.opt.param_groups[0]["lr"] == 0.25
    for name in OPTIMIZERS:                                   # every registered name validates
        assert load_config(None, [f"train.optimizer={name}"]).train.optimizer == name


@pytest.mark.parametrize("kwargs,name", [(dict(per_decade=0), "per_decade"), (dict(first=0), "first"),
                                         (dict(steps=0), "steps")])
def test_checkpoint_grid_refuses_bad_arguments(kwargs, name):
    args = {"steps": 100, **kwargs}
    with pytest.raises(ValueError, match=f"^{name}:"):
        checkpoint_steps(args.pop("steps"), **args)


def test_configs_written_before_measure_metrics_still_load():
    old = {"measure": {"error": "compare.gap:generalization_gap", "replicates": "",
                       "fidelity": "compare.fidelity:sliced_wasserstein", "probes": 8}}
    cfg = Config.from_dict(old)
    assert cfg.measure.metrics == ["gap", "sliced_wasserstein"] and cfg.measure.probes == 8
    assert Config.from_dict({"measure": {"fidelity": "auto"}}).measure.metrics == Config().measure.metrics
    with pytest.raises(ValueError, match="^measure.error"):
        Config.from_dict({"measure": {"error": "mypackage:my_error"}})


def test_unknown_compile_backend_is_named_with_the_allowed_values(tmp_path, capsys):
    from lab.cli import main

    with pytest.raises(ValueError, match=r"^train\.compile: unknown value 'nonsense'; expected one of \[.*'default'"
                                         r".*'eager'.*'inductor'.*'off'.*\]$"):
        load_config(None, ["train.compile=nonsense"])
    with pytest.raises(ValueError, match=r"train\.compile: unknown value 'inductr'; did you mean inductor\?"):
        load_config(None, ["train.compile=inductr"])
    assert load_config(None, ["train.compile=eager"]).train.compile == "eager"          # a debug backend
    assert main(["train", str(tmp_path / "run"), "train.compile=nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memgen: error: train.compile: unknown value 'nonsense'")
    assert not (tmp_path / "run").exists()


def test_params_that_config_toml_cannot_hold_are_refused_before_training(tmp_path):
    import torch

    from neural import train

    bf16 = {"data": {"name": "from_array", "params": {"path_or_array": torch.zeros(8, 2, dtype=torch.bfloat16)}}}
    with pytest.raises(ValueError, match=r"^data\.params\.path_or_array: a Tensor cannot be kept in a run's "
                                         r"config\.toml; .*save it with numpy\.save and give its path"):
        train(bf16, tmp_path / "run")
    with pytest.raises(ValueError, match=r"^model\.params\.width: a NoneType cannot be kept"):
        Config.from_dict({"model": {"params": {"width": None}}})
    assert not (tmp_path / "run").exists()


def test_checking_train_compile_off_does_not_import_torch_dynamo():
    """torch._dynamo, imported, can leave threads that hang a torchrun worker at exit (1 run in 3): checking
    ``train.compile = 'off'`` (the default) must not import it."""
    import subprocess
    import sys
    code = ("import sys\nfrom neural import load_config\nload_config(None, ['train.compile=off'])\n"
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"
