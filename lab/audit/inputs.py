"""What ``memgen audit`` measures: the model (a run folder, a diffusers folder, ``module:factory``) and the data.

MODEL:
* a memgen run folder (``config.toml`` and checkpoints): its latest EMA weights
  (:func:`neural.checkpoint.load_denoiser`); its own data set and recorded split are the default data;
* a local diffusers folder (``model_index.json`` with ``unet/`` and ``scheduler/``):
  :func:`neural.diffusers_folder.load_diffusers`;
* ``module:factory``: a callable returning a :class:`memgen.Denoiser` (used as it is, in eval mode), a
  ``(unet, scheduler)`` pair of diffusers objects (:func:`neural.external.from_diffusers`), or a network
  that already returns the x0-estimate ``net(x, sigma)`` (:class:`neural.external.PreconditionedDenoiser`);
  any other network: wrap it with an adapter of :mod:`neural.external` inside the factory.

DATA: ``NAME[:key=value,...]``, a loader of :data:`memgen.data.LOADERS` with its keyword arguments
(values read as TOML values, e.g. ``cifar10:root=/data/cifar,n=5000``), a ``.npy``/``.npz`` file
(``from_array``) or a folder of images (``image_folder``). The training set is the training part of the
``--train`` data set's split; the validation set is all of ``--val`` when given, else the validation
part of the ``--train`` split.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch

import memgen.data
from memgen.contract import Denoiser


@dataclass
class AuditData:
    """Training and validation points (``[n, *shape]``, ``[m, *shape]``), their labels, and where they came from."""

    train: torch.Tensor
    val: torch.Tensor
    train_labels: torch.Tensor | None
    val_labels: torch.Tensor | None
    description: dict


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets and quotes (``a=1,b=[2,3]`` -> ``['a=1', 'b=[2,3]']``)."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return parts + [cur] if cur else parts


def parse_data_spec(spec: str) -> tuple[str, dict]:
    """``'name:key=value,...'`` (or a ``.npy``/``.npz`` path, or an image folder) -> ``(loader name, kwargs)``."""
    from neural.config import parse_value

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data: expected a spec NAME[:key=value,...], a .npy/.npz file or an image folder, got {spec!r}")
    path = Path(spec)
    if path.suffix in (".npy", ".npz") and path.is_file():
        return "from_array", {"path_or_array": str(path)}
    if path.is_dir():
        return "image_folder", {"path": str(path)}
    name, _, rest = spec.partition(":")
    if name not in memgen.data.LOADERS:
        raise ValueError(f"data: {name!r} is neither a file, a folder nor a data set of {sorted(memgen.data.LOADERS)}")
    params = {}
    for item in _split_top_level(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"data: {item!r} in {spec!r} is not key=value")
        params[key.strip()] = parse_value(value.strip())
    return name, params


def load_data(train_spec: str, val_spec: str | None = None) -> AuditData:
    """The training and validation sets of the audit (module docstring)."""
    name, params = parse_data_spec(train_spec)
    data = memgen.data.load(name, **params)
    own = AuditData(data.train, data.val, data.train_labels, data.val_labels,
                    {"train": data.describe() | {"split": None}})
    if val_spec is not None:
        return with_val(own, val_spec)
    if len(data.split.val) == 0:
        raise ValueError(f"val: the data set {train_spec!r} has no validation part; pass --val DATA "
                         "(or give the loader n_train=...)")
    return own


def with_val(data: AuditData, val_spec: str) -> AuditData:
    """``data`` with all points of the data set ``val_spec`` as its validation set."""
    name, params = parse_data_spec(val_spec)
    val = memgen.data.load(name, **params)
    if val.shape != tuple(data.train.shape[1:]):
        raise ValueError(f"val: points of shape {val.shape} do not match the training points "
                         f"{tuple(data.train.shape[1:])}")
    return AuditData(data.train, val.x, data.train_labels, val.labels,
                     {**data.description, "val": val.describe() | {"split": None}})


def run_data(run_dir: Path) -> AuditData:
    """A memgen run's own training points (its recorded indices) and its data set's validation part."""
    from memgen.run_files import read_record, recorded_train_index
    from neural.config import load_config

    cfg = load_config(run_dir / "config.toml")
    data = memgen.data.load(cfg.data.name, **cfg.data.params)
    idx = torch.as_tensor(recorded_train_index(read_record(run_dir), len(data.x), run_dir))
    val_idx = torch.as_tensor(data.split.val)
    lab = data.labels
    return AuditData(data.x[idx], data.x[val_idx], None if lab is None else lab[idx],
                     None if lab is None else lab[val_idx], {"run": str(run_dir), "data": data.describe() | {"split": None}})


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.toml").exists() and (path / "record.json").exists()


def _from_factory(obj) -> Denoiser:
    from neural.external import PreconditionedDenoiser, from_diffusers

    if isinstance(obj, Denoiser):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2:
        return from_diffusers(*obj)
    if isinstance(obj, torch.nn.Module):
        return PreconditionedDenoiser(obj)
    raise TypeError(f"model: the factory returned {type(obj).__name__}; expected a memgen.Denoiser, a (unet, "
                    "scheduler) pair or a network net(x, sigma) -> x0")


def load_model(spec: str, *, device="cpu", scheduler=None,
               max_parameters: int | None = None) -> tuple[Denoiser, AuditData | None, str]:
    """``(denoiser in eval mode on device, the run's own data or None, kind)`` for a MODEL spec (module docstring).

    ``scheduler`` (a scheduler folder) and ``max_parameters`` (default
    :data:`neural.diffusers_folder.MAX_PARAMETERS`) apply to a diffusers folder only."""
    path = Path(spec)
    if path.is_dir() and not is_run_dir(path):
        from neural.diffusers_folder import MAX_PARAMETERS, load_diffusers

        model = load_diffusers(path, device=device, scheduler=scheduler, max_parameters=max_parameters or MAX_PARAMETERS)
        return model, None, "diffusers folder"
    if scheduler is not None or max_parameters is not None:
        raise ValueError(f"scheduler, max_parameters (--scheduler, --max-parameters): apply to a diffusers folder "
                         f"only, and {spec!r} is none")
    if is_run_dir(path):
        from neural.checkpoint import load_denoiser

        own = run_data(path)                                 # its record first: cheaper than the weights
        return load_denoiser(path, device=device), own, "memgen run"                # in eval mode
    if ":" in spec and not path.exists():
        return _from_factory(resolve(spec, "model")()).to(device).eval(), None, "factory"
    raise ValueError(f"model: {spec!r} is neither a memgen run folder, a diffusers folder nor module:factory")


def resolve(spec: str, key: str = "spec"):
    """The callable named ``'module:attribute'`` (``attribute`` may be dotted), imported on demand."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"{key}: expected 'module:function', got {spec!r}")
    module, attr = spec.split(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{key}: cannot import {spec!r} ({e})") from e
    if not callable(obj):
        raise ValueError(f"{key}: {spec!r} is not callable")
    return obj
