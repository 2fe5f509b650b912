"""Named network presets, and building a preconditioned denoiser from a preset and overrides.

=====================  =======================================================================  ==========
preset                 what                                                                     parameters
=====================  =======================================================================  ==========
``unet-tiny``          CPU tests: width 16, levels (1, 2), 1 block, attention at level 1        0.19M
``unet-small``         CPU-scale experiments: width 32, (1, 2, 2), 2 blocks, attention at 1     1.7M
``yoon-unet-64/128/256``  Yoon et al. (IDDPM CIFAR-10 defaults): (1, 2, 2, 2), 3 blocks,        13.2M /
                       attention at 16x16 and 8x8, scale-shift norm, dropout 0.3                52.5M / 210M
``bonnaire-w8..w64``   Bonnaire et al.: width W, (1, 2, 4), 2 blocks, attention at the two      0.26M, 1.0M,
                       lower resolutions, additive conditioning, GroupNorm(8), dropout 0.1,     4.0M, 16M
                       one channel (grayscale 32x32)
``marion-93m``         Marion & Wu's CIFAR-10 default: width 128, (1, 2, 4), 3 blocks, class-   92.5M
                       conditional (10 classes); ADM-style (scale-shift, resampling residual blocks, attention
                       at 16x16 and 8x8, dropout 0.1), which the paper does not spell out
``mlp-small``          residual MLP, width 128, 3 blocks (Bonnaire et al.'s mixture set-up)
``mlp-medium``         residual MLP, width 256, 4 blocks
=====================  =======================================================================  ==========

Yoon et al. report 52.5M (unconditional) and 53.0M (conditional; IDDPM's code embeds 1000 classes)
for UNet-128; IDDPM's learned-variance output channels (3.5k parameters) are left out, since the
losses here train the mean only.
"""
from __future__ import annotations

import inspect
import math

import torch

from .mlp import ResidualMLP
from .precond import PRECONDS
from .unet import UNet

ARCHS = {"unet": UNet, "mlp": ResidualMLP}
"""The network classes by the ``arch`` of a preset."""

_YOON = dict(arch="unet", channel_mult=(1, 2, 2, 2), num_res_blocks=3, attn_levels=(1, 2), dropout=0.3,
             num_heads=4, scale_shift=True)
_BONNAIRE = dict(arch="unet", in_channels=1, channel_mult=(1, 2, 4), num_res_blocks=2, attn_levels=(1, 2),
                 dropout=0.1, num_groups=8, num_heads=4, scale_shift=False)

PRESETS: dict[str, dict] = {
    "unet-tiny": dict(arch="unet", base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attn_levels=(1,),
                      num_groups=8, num_heads=1),
    "unet-small": dict(arch="unet", base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attn_levels=(1,),
                       num_groups=8, num_heads=4),
    "yoon-unet-64": dict(_YOON, base_channels=64),
    "yoon-unet-128": dict(_YOON, base_channels=128),
    "yoon-unet-256": dict(_YOON, base_channels=256),
    **{f"bonnaire-w{w}": dict(_BONNAIRE, base_channels=w) for w in (8, 16, 32, 64)},
    "marion-93m": dict(arch="unet", base_channels=128, channel_mult=(1, 2, 4), num_res_blocks=3, attn_levels=(1, 2),
                       dropout=0.1, num_heads=4, scale_shift=True, resblock_updown=True),
    "mlp-small": dict(arch="mlp", width=128, depth=3),
    "mlp-medium": dict(arch="mlp", width=256, depth=4),
}

STATED_PARAMETERS = {
    "yoon-unet-128": 52.5e6,
    "bonnaire-w8": 0.26e6, "bonnaire-w16": 1.0e6, "bonnaire-w32": 4.1e6, "bonnaire-w64": 16e6,
    "marion-93m": 93e6,
}
"""Parameter counts the papers state for the presets that reproduce their networks (``marion-93m``
with 10 classes; class conditioning comes from the data, not from the preset)."""


def preset(name: str) -> dict:
    """A copy of the keyword arguments of preset ``name`` (including ``arch``)."""
    if name not in PRESETS:
        raise ValueError(f"preset: {name!r} is unknown; expected one of {sorted(PRESETS)}")
    return dict(PRESETS[name])


def network_kwargs(name: str, shape: tuple, num_classes: int | None = None, **overrides) -> tuple[str, dict]:
    """``(arch, kwargs)`` of preset ``name`` for data of event ``shape``, with ``overrides`` applied.

    Images ``(C, H, W)`` set ``in_channels`` and ``resolution`` of a U-Net; vectors set ``dim`` of an MLP.
    Unknown override names raise a ValueError naming them.
    """
    kw = preset(name)
    arch = kw.pop("arch")
    cls = ARCHS[arch]
    accepted = set(inspect.signature(cls).parameters)
    for key in overrides:
        if key not in accepted:
            raise ValueError(f"{key}: not a parameter of the {arch} network; expected one of {sorted(accepted)}")
    if arch == "unet":
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"shape: a U-Net needs square images (C, H, H), got {tuple(shape)}")
        kw.update(in_channels=shape[0], resolution=shape[1])
    else:
        kw.update(dim=math.prod(shape))
    if num_classes is not None:
        kw["num_classes"] = num_classes
    kw.update(overrides)
    return arch, kw


def build_network(name: str, shape: tuple, num_classes: int | None = None, **overrides) -> torch.nn.Module:
    """The raw network of preset ``name`` for data of event ``shape`` (see :func:`network_kwargs`)."""
    arch, kw = network_kwargs(name, shape, num_classes, **overrides)
    return ARCHS[arch](**kw)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def preset_parameters(name: str, shape: tuple = (3, 32, 32), num_classes: int | None = None) -> int:
    """Parameter count of preset ``name`` for data of ``shape``, built on the 'meta' device (no memory)."""
    with torch.device("meta"):
        return count_parameters(build_network(name, shape, num_classes))


def model_from_config(model, shape: tuple, num_classes: int | None = None):
    """The preconditioned denoiser described by a :class:`neural.config.ModelConfig` for data of ``shape``.

    A bad network argument raises a ValueError naming its config key (``model.params.<name>``).
    """
    try:
        net = build_network(model.preset, tuple(shape), num_classes if model.class_conditional else None,
                            **model.params)
    except ValueError as e:
        raise ValueError(f"model.params.{e}") from e
    return PRECONDS[model.precond].from_config(net, model, tuple(shape))
