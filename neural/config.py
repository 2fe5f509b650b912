"""The configuration of a training run: four sections (data, model, train, measure), TOML in and out.

A config file is TOML with one table per section, e.g.::

    [data]
    name = "gmm"
    params = {n = 2000, d = 8}

    [model]
    preset = "mlp-small"

    [train]
    steps = 20000
    lr = 1e-3

Command-line overrides are ``section.key=value`` (``value`` read as a TOML value, or as a plain
string when it is not one), e.g. ``train.lr=4e-4``, ``model.params.base_channels=32``,
``model.params.channel_mult=[1,2]``. Every value is checked by :func:`validate`; a bad one raises a
ValueError whose message starts with its key (``train.lr: must be > 0, got -1``).
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@dataclass
class DataConfig:
    """``name``: a data set of :data:`memgen.data.LOADERS`; ``params``: its loader's keyword arguments;
    ``subset``: train on ``subset`` points of the split's training set (0: all of it), the first ones of
    a permutation seeded by ``subset_seed``, so that smaller subsets are nested in larger ones."""

    name: str = "gmm"
    params: dict = field(default_factory=dict)
    subset: int = 0
    subset_seed: int = 0


@dataclass
class ModelConfig:
    """``preset`` of :data:`neural.presets.PRESETS` with ``params`` overriding its arguments;
    ``precond`` ``'edm'`` (with ``sigma_data``) or ``'vp'`` (eps-prediction on ``schedule`` with
    ``timesteps`` steps, 0: the schedule's default); ``class_conditional`` embeds the data's labels."""

    preset: str = "mlp-small"
    params: dict = field(default_factory=dict)
    precond: str = "edm"
    sigma_data: float = 0.5
    schedule: str = "linear"
    timesteps: int = 0
    class_conditional: bool = False


@dataclass
class TrainConfig:
    """Optimization (``optimizer`` 'adam' or 'sgd' with ``momentum``; linear ``warmup_steps``; gradient
    norm clipping at ``grad_clip``, 0: off; EMA of the weights with ``ema_decay`` per step), the loss
    (``'edm'`` with log-normal sigma ``p_mean, p_std``, or ``'ddpm'`` with uniform t), the checkpoint
    grid (``checkpoints_per_decade`` log-spaced steps from ``first_checkpoint`` to ``steps``; the
    resumable ``latest`` every ``save_every`` steps) and the speed options (``precision`` 'auto' =
    bf16 autocast on CUDA, fp32 elsewhere; ``channels_last`` 'auto' = on for CUDA images; ``compile``
    'off', 'default' or a torch.compile backend name; ``threads``: CPU threads of the run, 0 = torch's
    default, e.g. cores / workers for parallel runs on one machine)."""

    steps: int = 10000
    batch_size: int = 128
    loss: str = "edm"
    p_mean: float = -1.2
    p_std: float = 1.2
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 0.0
    ema_decay: float = 0.999
    seed: int = 0
    checkpoints_per_decade: int = 8
    first_checkpoint: int = 10
    save_every: int = 500
    device: str = "auto"
    precision: str = "auto"
    channels_last: str = "auto"
    compile: str = "off"
    threads: int = 0
    progress: bool = True


@dataclass
class MeasureConfig:
    """Measurement at every grid checkpoint: per-sigma denoising error of ``probes`` fixed training and
    validation points with fixed noise at ``sigmas`` log-spaced levels in [sigma_min, sigma_max]
    (``error``), and ``samples`` fresh samples (``sampler`` with ``sample_steps`` EDM steps, fixed
    seed) scored by ``replicates`` and ``fidelity``. Metric functions are named ``'module:function'``
    ('' disables one; ``fidelity = 'auto'`` picks Mondrian validity, mixture likelihood or sliced
    Wasserstein by data set). ``use_ema`` measures the EMA weights."""

    enabled: bool = True
    probes: int = 64
    sigmas: int = 16
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    samples: int = 256
    sample_steps: int = 18
    sampler: str = "heun"
    batch_size: int = 256
    seed: int = 0
    use_ema: bool = True
    error: str = "compare.errors:generalization_gap"
    replicates: str = "compare.replicates:replicates"
    fidelity: str = "auto"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Build and validate a config from nested dicts (missing keys take their defaults)."""
        if not isinstance(d, dict):
            raise TypeError(f"config: expected a mapping of sections, got {type(d).__name__}")
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        out = cls()
        for name, values in d.items():
            if name not in sections:
                raise ValueError(f"{name}: unknown config section; expected one of {sorted(sections)}")
            if not isinstance(values, dict):
                raise ValueError(f"{name}: expected a table of settings, got {values!r}")
            section = getattr(out, name)
            known = {f.name: f for f in dataclasses.fields(section)}
            for key, value in values.items():
                if key not in known:
                    raise ValueError(f"{name}.{key}: unknown setting; expected one of {sorted(known)}")
                setattr(section, key, _typed(f"{name}.{key}", value, getattr(section, key)))
        validate(out)
        return out


SECTIONS = ("data", "model", "train", "measure")


def _typed(key: str, value, default):
    """``value`` checked against the type of the setting's default (ints are accepted for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{key}: expected {type(default).__name__}, got {value!r}")
    return value


def _need(ok: bool, key: str, what: str, value):
    if not ok:
        raise ValueError(f"{key}: {what}, got {value!r}")


def validate(config: Config) -> Config:
    """Check every setting's range and the combinations; raise a ValueError naming the key."""
    from memgen.data import LOADERS
    from memgen.samplers import SAMPLERS

    from .presets import ARCHS, PRESETS
    from .precond import SCHEDULES

    d, m, t, s = config.data, config.model, config.train, config.measure
    _need(d.name in LOADERS, "data.name", f"unknown data set; expected one of {sorted(LOADERS)}", d.name)
    _need(d.subset >= 0, "data.subset", "must be >= 0 (0: the whole training split)", d.subset)
    _need(d.subset_seed >= 0, "data.subset_seed", "must be >= 0", d.subset_seed)
    _need(m.preset in PRESETS, "model.preset", f"unknown preset; expected one of {sorted(PRESETS)}", m.preset)
    if m.preset in PRESETS:
        accepted = set(inspect.signature(ARCHS[PRESETS[m.preset]["arch"]]).parameters)
        for key in m.params:
            _need(key in accepted, f"model.params.{key}", f"not an argument of the network; expected one of "
                  f"{sorted(accepted)}", m.params[key])
    _need(m.precond in ("edm", "vp"), "model.precond", "expected 'edm' or 'vp'", m.precond)
    _need(m.sigma_data > 0 and math.isfinite(m.sigma_data), "model.sigma_data", "must be > 0", m.sigma_data)
    _need(m.schedule in SCHEDULES, "model.schedule", f"expected one of {sorted(SCHEDULES)}", m.schedule)
    _need(m.timesteps >= 0, "model.timesteps", "must be >= 0 (0: the schedule's default)", m.timesteps)

    _need(t.steps >= 1, "train.steps", "must be >= 1", t.steps)
    _need(t.batch_size >= 1, "train.batch_size", "must be >= 1", t.batch_size)
    _need(t.loss in ("edm", "ddpm"), "train.loss", "expected 'edm' or 'ddpm'", t.loss)
    _need(t.loss != "ddpm" or m.precond == "vp", "train.loss",
          "'ddpm' trains an eps-prediction network and needs model.precond = 'vp'", t.loss)
    _need(t.p_std > 0, "train.p_std", "must be > 0", t.p_std)
    _need(t.optimizer in ("adam", "sgd"), "train.optimizer", "expected 'adam' or 'sgd'", t.optimizer)
    _need(t.lr > 0 and math.isfinite(t.lr), "train.lr", "must be > 0", t.lr)
    _need(len(t.betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in t.betas), "train.betas",
          "expected two numbers in [0, 1)", t.betas)
    _need(0 <= t.momentum < 1, "train.momentum", "must lie in [0, 1)", t.momentum)
    _need(t.weight_decay >= 0, "train.weight_decay", "must be >= 0", t.weight_decay)
    _need(t.warmup_steps >= 0, "train.warmup_steps", "must be >= 0", t.warmup_steps)
    _need(t.grad_clip >= 0, "train.grad_clip", "must be >= 0 (0: no clipping)", t.grad_clip)
    _need(0 <= t.ema_decay < 1, "train.ema_decay", "must lie in [0, 1)", t.ema_decay)
    _need(t.seed >= 0, "train.seed", "must be >= 0", t.seed)
    _need(t.checkpoints_per_decade >= 1, "train.checkpoints_per_decade", "must be >= 1", t.checkpoints_per_decade)
    _need(t.first_checkpoint >= 1, "train.first_checkpoint", "must be >= 1", t.first_checkpoint)
    _need(t.save_every >= 1, "train.save_every", "must be >= 1", t.save_every)
    _need(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", t.device) is not None, "train.device",
          "expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", t.device)
    _need(t.precision in ("auto", "fp32", "bf16"), "train.precision", "expected 'auto', 'fp32' or 'bf16'", t.precision)
    _need(t.channels_last in ("auto", "on", "off"), "train.channels_last", "expected 'auto', 'on' or 'off'",
          t.channels_last)
    _need(t.threads >= 0, "train.threads", "must be >= 0 (0: torch's default)", t.threads)
    _need(bool(t.compile), "train.compile", "expected 'off', 'default' or a torch.compile backend", t.compile)

    for key in ("probes", "sigmas", "sample_steps", "batch_size"):
        _need(getattr(s, key) >= 1, f"measure.{key}", "must be >= 1", getattr(s, key))
    _need(s.samples >= 0, "measure.samples", "must be >= 0 (0: no sampling metrics)", s.samples)
    _need(0 < s.sigma_min <= s.sigma_max and math.isfinite(s.sigma_max), "measure.sigma_min",
          f"must satisfy 0 < sigma_min <= sigma_max = {s.sigma_max}", s.sigma_min)
    _need(s.sampler in SAMPLERS, "measure.sampler", f"expected one of {sorted(SAMPLERS)}", s.sampler)
    _need(s.seed >= 0, "measure.seed", "must be >= 0", s.seed)
    for key in ("error", "replicates", "fidelity"):
        spec = getattr(s, key)
        _need(spec == "" or (key == "fidelity" and spec == "auto") or re.fullmatch(r"[\w.]+:\w+", spec) is not None,
              f"measure.{key}", "expected 'module:function' or '' (off)" + (" or 'auto'" if key == "fidelity" else ""),
              spec)
    return config


# --- TOML in and out -------------------------------------------------------------------------------

def parse_value(text: str):
    """A command-line value: a TOML value (``1e-4``, ``true``, ``[1, 2]``, ``"a"``) or else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(item: str) -> tuple[str, object]:
    """``'section.key=value'`` -> ``('section.key', value)`` (value read by :func:`parse_value`)."""
    if "=" not in item:
        raise ValueError(f"override {item!r}: expected section.key=value")
    key, text = item.split("=", 1)
    return key.strip(), parse_value(text.strip())


def with_values(config: Config | dict, values: dict) -> Config:
    """A new, validated config with ``{'section.key': value}`` set (``'section.params.name'`` too)."""
    d = config.to_dict() if isinstance(config, Config) else json.loads(json.dumps(config))
    for key, value in values.items():
        parts = key.split(".")
        if len(parts) < 2 or parts[0] not in SECTIONS:
            raise ValueError(f"{key}: expected section.key with section one of {list(SECTIONS)}")
        if len(parts) > 2 and parts[1] != "params":
            raise ValueError(f"{key}: only the 'params' tables take nested keys")
        node = d.setdefault(parts[0], {})
        for p in parts[1:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return Config.from_dict(d)


def apply_overrides(config: Config | dict, overrides) -> Config:
    """A new, validated config with ``section.key=value`` overrides applied (``section.params.name=value`` too)."""
    return with_values(config, dict(parse_override(item) for item in overrides))


def load_config(path=None, overrides=()) -> Config:
    """Read a TOML config (``None``: the defaults) and apply command-line overrides."""
    d = {}
    if path is not None:
        with open(path, "rb") as f:
            try:
                d = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"config file {path}: not valid TOML ({e})") from e
    return apply_overrides(d, overrides)


def as_config(config) -> Config:
    """A :class:`Config` from a Config, a dict of sections, or the path of a TOML file."""
    if isinstance(config, Config):
        return validate(config)
    if isinstance(config, dict):
        return Config.from_dict(config)
    if isinstance(config, (str, Path)):
        return load_config(config)
    raise TypeError(f"config: expected a Config, a dict or a TOML path, got {type(config).__name__}")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def dump_toml(config: Config) -> str:
    """The config as TOML text (reads back to an equal config with :func:`load_config`)."""
    lines = []
    for name, values in config.to_dict().items():
        lines.append(f"[{name}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)
