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
``model.params.channel_mult=[1,2]``. Each field is declared once, with its default, its one-line help
and its rule (:func:`setting`; ``memgen config`` lists them); :func:`validate` checks every value
against its rule and a bad one raises a ValueError whose message starts with its key
(``train.lr: must be > 0, got -1``; ``train.stpes: unknown setting; did you mean train.steps?``).
A choice among named things (data sets, presets, preconditioners, losses, optimizers, samplers) is
checked against the registry that the code dispatches on, so an option is added in one place.
"""
from __future__ import annotations

import dataclasses
import difflib
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


def setting(default, help: str, *, choices=None, ge=None, gt=None, lt=None, pattern: str | None = None):
    """A config field: its default, its one-line ``help`` and the rule :func:`validate` checks.

    ``choices``: the allowed values, or a function returning a registry whose keys are allowed (read
    when validating, so that the registry is the one place an option is added); ``ge``/``gt``/``lt``:
    bounds of a number (every float must also be finite); ``pattern``: a regular expression a string
    must match in full.
    """
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "lt": lt, "pattern": pattern}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _loaders():
    from memgen.data import LOADERS
    return LOADERS


def _samplers():
    from memgen.samplers import SAMPLERS
    return SAMPLERS


def _presets():
    from .presets import PRESETS
    return PRESETS


def _preconds():
    from .precond import PRECONDS
    return PRECONDS


def _schedules():
    from .precond import SCHEDULES
    return SCHEDULES


def _losses():
    from .losses import LOSSES
    return LOSSES


def _optimizers():
    from .optim import OPTIMIZERS
    return OPTIMIZERS


class _CompileChoices:
    """``'off'``, ``'default'`` and torch.compile's backends (``torch._dynamo.list_backends(exclude_tags=())``:
    debug ones such as ``'eager'`` included; an error lists the usual ones). torch._dynamo (2 s to import)
    is read only when a backend is named."""

    def __contains__(self, value) -> bool:
        if value in ("off", "default"):           # no torch._dynamo: importing it may leave worker threads
            return True                           # that hang a torchrun process at exit
        import torch._dynamo
        return value in torch._dynamo.list_backends(exclude_tags=())

    def __iter__(self):
        import torch._dynamo
        return iter(["off", "default", *torch._dynamo.list_backends(), "eager", "aot_eager"])


@dataclass
class DataConfig:
    """The data set and the part of its training split a run trains on."""

    name: str = setting("gmm", "data set (a loader of memgen.data.LOADERS)", choices=_loaders)
    params: dict = setting({}, "keyword arguments of the data set's loader, e.g. {n = 2000, d = 8}")
    subset: int = setting(0, "train on the first `subset` points of a seeded permutation of the training split "
                             "(0: all; smaller subsets are nested in larger ones)", ge=0)
    subset_seed: int = setting(0, "seed of the permutation that picks the subset", ge=0)


@dataclass
class ModelConfig:
    """The network (a preset with overrides) and its preconditioning into a denoiser."""

    preset: str = setting("mlp-small", "network preset (neural.presets.PRESETS; `memgen presets` lists them)",
                          choices=_presets)
    params: dict = setting({}, "arguments of the preset's network to override, e.g. {base_channels = 32}")
    precond: str = setting("edm", "preconditioning: 'edm' (x0 with sigma_data) or 'vp' (eps on a VP schedule)",
                           choices=_preconds)
    sigma_data: float = setting(0.5, "data standard deviation of the EDM preconditioning", gt=0)
    schedule: str = setting("linear", "VP schedule of precond = 'vp'", choices=_schedules)
    timesteps: int = setting(0, "VP timesteps (0: the schedule's default)", ge=0)
    class_conditional: bool = setting(False, "embed the data's class labels")


@dataclass
class TrainConfig:
    """Optimization, loss, checkpoint grid and speed options of a run.

    ``threads`` is 1 unless asked: on 2 cores shared with other jobs (load ~6), ``mlp-small`` at batch
    128 took 53-64 ms per step on 1 thread and 507-692 ms on torch's default of 2 (measured twice
    each); parallel runs of a sweep would oversubscribe a machine the same way. A dedicated CPU
    machine can set ``train.threads=0`` (all cores) or a number; on a GPU the setting hardly matters.
    """

    steps: int = setting(10000, "optimizer steps", ge=1)
    batch_size: int = setting(128, "global batch (split over DDP processes)", ge=1)
    loss: str = setting("edm", "loss: 'edm' (log-normal sigma) or 'ddpm' (uniform t, needs model.precond = 'vp')",
                        choices=_losses)
    p_mean: float = setting(-1.2, "mean of ln sigma of the EDM loss")
    p_std: float = setting(1.2, "standard deviation of ln sigma of the EDM loss", gt=0)
    optimizer: str = setting("adam", "optimizer", choices=_optimizers)
    lr: float = setting(1e-4, "learning rate", gt=0)
    betas: list = setting([0.9, 0.999], "Adam's two betas, each in [0, 1)")
    momentum: float = setting(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = setting(0.0, "weight decay", ge=0)
    warmup_steps: int = setting(0, "linear learning-rate warm-up steps (0: none)", ge=0)
    grad_clip: float = setting(0.0, "gradient-norm clipping (0: off)", ge=0)
    ema_decay: float = setting(0.999, "EMA decay of the weights per step", ge=0, lt=1)
    seed: int = setting(0, "seed of the weights, data order, noise and dropout", ge=0)
    checkpoints_per_decade: int = setting(8, "log-spaced grid checkpoints per decade of steps", ge=1)
    first_checkpoint: int = setting(10, "first step of the checkpoint grid", ge=1)
    save_every: int = setting(500, "steps between rewrites of the resumable latest.pt", ge=1)
    device: str = setting("auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", pattern=r"auto|cpu|cuda(:\d+)?|mps")
    precision: str = setting("auto", "'auto' (bf16 autocast on CUDA, else fp32), 'fp32' or 'bf16'",
                             choices=("auto", "fp32", "bf16"))
    channels_last: str = setting("auto", "channels-last memory format: 'auto' (CUDA images), 'on' or 'off'",
                                 choices=("auto", "on", "off"))
    compile: str = setting("off", "torch.compile: 'off', 'default' or a backend of torch._dynamo.list_backends()",
                           choices=_CompileChoices)
    threads: int = setting(1, "CPU threads of the run (0: torch's default, all cores); 1 by default: a shared "
                              "machine is not oversubscribed and results do not depend on its core count", ge=0)
    progress: bool = setting(True, "show a progress bar")


@dataclass
class MeasureConfig:
    """What is measured at every grid checkpoint: fixed probes and fixed sampling noise, and which metrics."""

    enabled: bool = setting(True, "measure at every grid checkpoint")
    metrics: list = setting(["gap", "replicates", "fidelity"],
                            "names of the metrics measured (lab.run_metrics.METRICS)")
    probes: int = setting(64, "training and validation probe points (each with one fixed noise draw)", ge=1)
    sigmas: int = setting(16, "log-spaced noise levels of the probe errors", ge=1)
    sigma_min: float = setting(0.002, "smallest noise level (probes and sampler)", gt=0)
    sigma_max: float = setting(80.0, "largest noise level (probes and sampler)", gt=0)
    samples: int = setting(256, "samples drawn from fixed noise for sample metrics (0: none)", ge=0)
    sample_steps: int = setting(18, "EDM sampler steps", ge=1)
    sampler: str = setting("heun", "sampler (memgen.samplers.SAMPLERS)", choices=_samplers)
    batch_size: int = setting(256, "samples drawn per batch", ge=1)
    seed: int = setting(0, "seed of the probes, their noise and the sampling noise", ge=0)
    use_ema: bool = setting(True, "measure the EMA weights (else the raw weights)")


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
        for name, values in _upgrade(d).items():
            if name not in sections:
                raise ValueError(f"{name}: unknown config section" + _suggest(name, sections))
            if not isinstance(values, dict):
                raise ValueError(f"{name}: expected a table of settings, got {values!r}")
            section = getattr(out, name)
            known = {f.name: f for f in dataclasses.fields(section)}
            for key, value in values.items():
                if key not in known:
                    raise ValueError(f"{name}.{key}: unknown setting" + _suggest(key, known, name + "."))
                setattr(section, key, _typed(f"{name}.{key}", value, getattr(section, key)))
        validate(out)
        return out


SECTIONS = ("data", "model", "train", "measure")

_OLD_METRICS = {"error": {"generalization_gap": "gap"}, "replicates": {"replicates": "replicates"},
                "fidelity": {"auto": "fidelity", "mondrian_valid_fraction": "mondrian_validity",
                             "log_likelihood": "log_likelihood", "sliced_wasserstein": "sliced_wasserstein"}}
"""Configs written before ``measure.metrics`` named metric functions in ``measure.error``, ``.replicates``
and ``.fidelity`` (``'module:function'``, ``''``: off); their registry names."""


def _upgrade(d: dict) -> dict:
    """``d`` with the old ``measure.error/replicates/fidelity`` keys turned into ``measure.metrics`` (so that
    the runs and checkpoints saved before it still load, and resume with the same measurement)."""
    measure = d.get("measure")
    if not isinstance(measure, dict) or not set(_OLD_METRICS) & set(measure):
        return d
    measure, names = dict(measure), []
    defaults = {"error": "compare.gap:generalization_gap", "replicates": "compare.replicates:replicates",
                "fidelity": "auto"}
    for key, known in _OLD_METRICS.items():
        spec = measure.pop(key, defaults[key])
        if spec:
            function = str(spec).split(":")[-1].split(".")[-1]
            if function not in known:
                raise ValueError(f"measure.{key}: {spec!r} is no longer a setting; name a registered metric in "
                                 "measure.metrics instead")
            names.append(known[function])
    if "metrics" in measure:
        raise ValueError("measure.metrics: cannot be given with the old measure.error/replicates/fidelity keys")
    return {**d, "measure": {**measure, "metrics": names}}


def _suggest(name: str, known, prefix: str = "") -> str:
    """``'; did you mean <closest>?'`` (difflib), else ``'; expected one of [...]'``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f"; did you mean {prefix}{close[0]}?" if close else f"; expected one of {sorted(known)}"


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


def _check_field(key: str, value, meta: dict) -> None:
    """The rule of one field (see :func:`setting`)."""
    if isinstance(value, float):
        _need(math.isfinite(value), key, "must be a finite number", value)
    for bound, ok, what in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                            ("lt", lambda v, b: v < b, "<")):
        if meta.get(bound) is not None:
            _need(ok(value, meta[bound]), key, f"must be {what} {meta[bound]}", value)
    choices = meta.get("choices")
    if choices is not None:
        allowed = choices() if callable(choices) else choices
        if value not in allowed:
            raise ValueError(f"{key}: unknown value {value!r}" + _suggest(value, allowed))
    if meta.get("pattern") is not None:
        _need(re.fullmatch(meta["pattern"], value) is not None, key, f"expected {meta['help']}", value)


def validate(config: Config) -> Config:
    """Check every setting against the rule of its field, then the combinations; raise a ValueError naming the key."""
    from .presets import ARCHS, PRESETS

    for section in SECTIONS:
        values = getattr(config, section)
        for f in dataclasses.fields(values):
            _check_field(f"{section}.{f.name}", getattr(values, f.name), f.metadata)

    m, t, s = config.model, config.train, config.measure
    accepted = set(inspect.signature(ARCHS[PRESETS[m.preset]["arch"]]).parameters)
    for key in m.params:
        if key not in accepted:
            raise ValueError(f"model.params.{key}: not an argument of the network" + _suggest(key, accepted))
    for section in ("data", "model"):
        for key, value in getattr(config, section).params.items():
            try:
                toml_value(value)
            except TypeError:
                raise ValueError(f"{section}.params.{key}: a {type(value).__name__} cannot be kept in a run's "
                                 "config.toml; give a TOML value (an array: save it with numpy.save and give its "
                                 "path)") from None
    required = getattr(_losses()[t.loss], "precond", None)
    _need(required in (None, m.precond), "train.loss", f"{t.loss!r} needs model.precond = {required!r}", t.loss)
    _need(len(t.betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                    for b in t.betas), "train.betas", "expected two numbers in [0, 1)", t.betas)
    _need(s.sigma_min <= s.sigma_max, "measure.sigma_min", f"must be <= sigma_max = {s.sigma_max}", s.sigma_min)
    _need(all(isinstance(name, str) and name for name in s.metrics) and len(set(s.metrics)) == len(s.metrics),
          "measure.metrics", "expected a list of distinct metric names", s.metrics)
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
        if len(parts) < 2:
            raise ValueError(f"{key}: expected section.key with section one of {list(SECTIONS)}")
        if parts[0] not in SECTIONS:
            close = difflib.get_close_matches(parts[0], SECTIONS, n=1)
            hint = f"did you mean {'.'.join([close[0], *parts[1:]])}?" if close else f"expected one of {list(SECTIONS)}"
            raise ValueError(f"{key}: unknown config section; {hint}")
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


def toml_value(v) -> str:
    """``v`` (bool, number, string, list or dict) written as a TOML value; a dict as an inline table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def dump_toml(config: Config) -> str:
    """The config as TOML text (reads back to an equal config with :func:`load_config`)."""
    lines = []
    for name, values in config.to_dict().items():
        lines.append(f"[{name}]")
        lines += [f"{_toml_key(k)} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)
