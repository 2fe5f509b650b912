"""A local diffusers folder (written by ``save_pretrained``) read as a denoiser, with its files checked first.

:func:`load_diffusers` reads a pipeline folder (``model_index.json`` with ``unet/`` and ``scheduler/``) or a
model folder and returns :func:`neural.external.from_diffusers` of it; nothing is downloaded, and diffusers
is imported only when the checks have passed (``pip install memgen[diffusers]``). Before anything is built,
a config file larger than :data:`MAX_CONFIG_BYTES`, a ``config.json`` whose estimated parameter count
(:func:`unet_parameters`) exceeds :data:`MAX_PARAMETERS` and a scheduler of more than :data:`MAX_TIMESTEPS`
steps are refused, naming the file (``max_parameters=`` / ``max_timesteps=`` raise the limits).
"""
from __future__ import annotations

from pathlib import Path

from memgen.checks import integer
from memgen.run_files import read_json

from .external import VPDiscreteDenoiser, from_diffusers

MAX_PARAMETERS = 2 * 10 ** 9
"""Largest estimated parameter count of a diffusers model folder that :func:`load_diffusers` builds (8 GB in
float32; SDXL's UNet needs ``max_parameters=3e9``)."""
MAX_TIMESTEPS = 10 ** 6
"""Largest ``num_train_timesteps`` of a scheduler config that :func:`load_diffusers` accepts."""
MAX_CONFIG_BYTES = 16 * 2 ** 20
"""Largest config file (``config.json``, ``scheduler_config.json``) that :func:`load_diffusers` reads."""


def _read_config(path: Path) -> dict:
    """A diffusers config file as a dict; one larger than :data:`MAX_CONFIG_BYTES` or damaged is refused by name."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: {size} bytes, more than a config file holds "
                         f"(limit {MAX_CONFIG_BYTES}, neural.diffusers_folder.MAX_CONFIG_BYTES)")
    config = read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _config_ints(config: dict, key: str, path: Path, count: int | None = None) -> list[int]:
    """``config[key]``, one positive integer or a list of them (``count`` entries for a single one)."""
    value = config[key]
    values = [value] * (count or 1) if not isinstance(value, list) else value
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values) \
            or (count is not None and len(values) != count):
        size = "" if count is None else f" ({count} of them)"
        raise ValueError(f"{path}: {key} must be a positive integer or a list of them{size}, got {value!r}")
    return values


def _config_int(config: dict, key: str, path: Path, default: int) -> int:
    """``config[key]``, one positive integer (``default`` when absent or null)."""
    return default if config.get(key) is None else _config_ints(config, key, path, 1)[0]


def _attention_levels(config: dict, key: str, path: Path, count: int) -> list[bool]:
    """Per level of ``config[key]`` (a list of ``count`` block type names), whether it names attention (``Attn``)."""
    types = config.get(key)
    if types is None:
        return [False] * count
    if not isinstance(types, list) or len(types) != count or not all(isinstance(t, str) for t in types):
        raise ValueError(f"{path}: {key} must be a list of {count} block type names, got {types!r}")
    return ["Attn" in t for t in types]


def unet_parameters(config: dict, path: Path = Path("config.json")) -> int:
    """Parameters of a diffusers ``UNet2DModel`` config, counted without building it (exact on the seven
    UNets of tests/test_neural_external.py, diffusers 0.42; the test allows 3% for other versions' layouts). With ``c_k`` = ``block_out_channels``, ``n_k`` =
    ``layers_per_block``, ``E`` the time embedding width (``time_embedding_dim``, default ``4 c_0``):

    * ResNet block ``a -> c``: group norms ``2a + 2c``, 3x3 convolutions ``9ac + c`` and ``9c^2 + c``, time
      projection ``Ec + c`` (twice that with ``resnet_time_scale_shift='scale_shift'``), shortcut ``ac + c``
      when ``a != c``;
    * attention layer of width ``c`` (one per ResNet block of a level whose block type names ``Attn``, and one
      in the middle unless ``add_attention`` is false): group norm ``2c``, query, key, value and output
      projections ``c^2 + c`` each;
    * level k down: ResNet blocks ``c_{k-1} -> c_k`` then ``n_k - 1`` of ``c_k -> c_k``; up (mirrored):
      ``n_k + 1`` blocks ``a -> c_k`` whose input ``a`` is ``c_{k+1}`` (the deeper level's output; ``c_k`` for
      the others) plus the skip channels ``c_k`` (``c_{k-1}`` for the last), at the edges ``c_0``, ``c_{-1}``;
      middle (unless ``mid_block_type`` is null): two blocks ``c_{-1} -> c_{-1}``;
    * resampling, down from each level but the last, up from each level but the first: a 3x3 convolution
      ``9c^2 + c`` (at attention levels with ``downsample_type`` / ``upsample_type`` ``'resnet'``, a ResNet
      block ``c -> c``);
    * stem and head: ``conv_in`` ``9 C_in c_0 + c_0``, time MLP ``(dE + E) + (E^2 + E)`` with ``d = c_0``
      (``2 c_0`` for Fourier time features, whose ``c_0`` frequencies count too), class embedding ``K E``
      (``num_class_embeds``), output norm ``2 c_0`` and ``conv_out`` ``9 c_0 C_out + C_out``.

    A ``UNet2DConditionModel``'s cross-attention transformer blocks count as one attention layer each, so the
    estimate errs low for those. 0 for a config without ``block_out_channels``.
    """
    if "block_out_channels" not in config:
        return 0
    ch = _config_ints(config, "block_out_channels", path)
    layers = _config_ints(config, "layers_per_block", path, len(ch)) if "layers_per_block" in config else [2] * len(ch)
    down_attn = _attention_levels(config, "down_block_types", path, len(ch))
    up_attn = _attention_levels(config, "up_block_types", path, len(ch))[::-1]        # up levels, from c_0
    temb = _config_int(config, "time_embedding_dim", path, 4 * ch[0])
    shift = 2 if config.get("resnet_time_scale_shift") == "scale_shift" else 1

    def block(a: int, c: int) -> int:
        return 2 * a + 2 * c + 9 * a * c + 9 * c * c + 2 * c + shift * (temb * c + c) + (a * c + c if a != c else 0)

    def attention(c: int) -> int:
        return 4 * (c * c + c) + 2 * c

    def resample(c: int, attn: bool, key: str) -> int:
        return block(c, c) if attn and config.get(key) == "resnet" else 9 * c * c + c

    total = 0
    if config.get("mid_block_type", "UNetMidBlock2D") is not None:
        total += 2 * block(ch[-1], ch[-1]) + (attention(ch[-1]) if config.get("add_attention", True) else 0)
    for k, (c, n) in enumerate(zip(ch, layers)):
        prev, deeper = ch[max(k - 1, 0)], ch[min(k + 1, len(ch) - 1)]
        total += block(prev, c) + (n - 1) * block(c, c) + down_attn[k] * n * attention(c)
        ups = [(deeper if j == 0 else c) + (prev if j == n else c) for j in range(n + 1)]
        total += sum(block(a, c) for a in ups) + up_attn[k] * (n + 1) * attention(c)
        total += resample(c, down_attn[k], "downsample_type") if k < len(ch) - 1 else 0
        total += resample(c, up_attn[k], "upsample_type") if k else 0
    c_in, c_out = _config_int(config, "in_channels", path, 3), _config_int(config, "out_channels", path, 3)
    fourier = config.get("time_embedding_type") == "fourier"
    classes = _config_int(config, "num_class_embeds", path, 0) if config.get("class_embed_type") is None else 0
    stem = 9 * c_in * ch[0] + ch[0] + fourier * ch[0] + (1 + fourier) * ch[0] * temb + temb + temb * temb + temb
    return total + stem + classes * temb + 2 * ch[0] + 9 * ch[0] * c_out + c_out


def _check_unet_config(config: dict, path: Path, max_parameters: int) -> None:
    n = unet_parameters(config, path)
    if n > max_parameters:
        raise ValueError(f"{path}: the model has about {n:.3g} parameters, more than max_parameters="
                         f"{max_parameters:.3g} (neural.diffusers_folder.MAX_PARAMETERS); to load it, raise max_parameters= "
                         "(memgen audit: --max-parameters)")


def _check_scheduler_config(config: dict, path: Path, max_timesteps: int) -> None:
    steps = config.get("num_train_timesteps", 1000)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= max_timesteps:
        raise ValueError(f"{path}: num_train_timesteps must be an integer in [2, {max_timesteps}] "
                         f"(neural.diffusers_folder.MAX_TIMESTEPS; raise it with max_timesteps=), got {steps!r}")


def _diffusers_class(config: dict, config_file: Path):
    import diffusers

    name = config.get("_class_name")
    cls = getattr(diffusers, str(name), None)
    if cls is None:
        raise ValueError(f"{config_file}: names class {name!r}, which diffusers {diffusers.__version__} lacks")
    return cls


def load_diffusers(folder, *, scheduler=None, prediction_type: str | None = None, timestep: str = "interpolate",
                   device="cpu", extra: dict | None = None, max_parameters: int = MAX_PARAMETERS,
                   max_timesteps: int = MAX_TIMESTEPS) -> VPDiscreteDenoiser:
    """The denoiser of a local diffusers folder written by ``save_pretrained`` (never the hub).

    ``folder`` is a pipeline folder (``model_index.json`` with ``unet/`` and ``scheduler/``) or a model
    folder (``config.json``; then pass ``scheduler``, an object or a scheduler folder). The model is put
    on ``device`` in eval mode, without gradients. Before anything is built, a model whose estimated size
    (:func:`unet_parameters`) exceeds ``max_parameters`` and a scheduler config of more than ``max_timesteps``
    steps are refused, naming the file.
    """
    max_parameters = integer(max_parameters, "max_parameters")
    max_timesteps = integer(max_timesteps, "max_timesteps", 2)
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder: no folder {root}")
    unet_dir = root / "unet" if (root / "model_index.json").exists() else root
    if not (unet_dir / "config.json").exists():
        raise ValueError(f"folder: {root} holds neither model_index.json with unet/ nor a model config.json")
    unet_config = _read_config(unet_dir / "config.json")
    _check_unet_config(unet_config, unet_dir / "config.json", max_parameters)
    sched_config = None
    if scheduler is None or isinstance(scheduler, (str, Path)):
        sched_dir = Path(scheduler) if scheduler is not None else root / "scheduler"
        if not (sched_dir / "scheduler_config.json").exists():
            raise ValueError(f"scheduler: no scheduler_config.json in {sched_dir}; pass scheduler= "
                             "(memgen audit: --scheduler FOLDER)")
        sched_config = _read_config(sched_dir / "scheduler_config.json")
        _check_scheduler_config(sched_config, sched_dir / "scheduler_config.json", max_timesteps)
    try:
        import diffusers  # noqa: F401
    except ImportError as e:
        raise ImportError("load_diffusers needs diffusers: pip install 'memgen[diffusers]'") from e
    if sched_config is not None:
        cls = _diffusers_class(sched_config, sched_dir / "scheduler_config.json")
        scheduler = cls.from_pretrained(sched_dir, local_files_only=True)
    cls = _diffusers_class(unet_config, unet_dir / "config.json")
    unet = cls.from_pretrained(unet_dir, local_files_only=True).to(device).eval().requires_grad_(False)
    return from_diffusers(unet, scheduler, prediction_type=prediction_type, timestep=timestep, extra=extra)
