"""Feature spaces for the replicate search and fidelity: pixels, any module or callable, torchvision networks.

A feature map is any callable ``phi: [B, *shape] -> [B, f]``. :func:`feature_map` turns a spec into one:

* ``None`` or ``'pixels'``: :func:`pixels`, the flattened image ``phi(x) = vec(x)``;
* a ``torch.nn.Module`` or callable: wrapped by :class:`FeatureMap` (batches, eval mode, no gradients,
  inputs sent to the module's device, features returned flattened as float32 on the CPU);
* ``'inception_v3'`` / ``'resnet50'``: torchvision's network from **a local weights file** (a ``state_dict``
  saved with ``torch.save``; nothing is downloaded), its classifier replaced by the identity so that it
  returns the 2048 pooled features. Images in [-1, 1] are resized (bilinear) to 299 (Inception-v3, fed
  [-1, 1] as torchvision's ported weights expect with ``transform_input=False``) or 224 (ResNet-50,
  normalized by the ImageNet mean and standard deviation of [0, 1] images); one channel is repeated to three.
  torchvision is imported only here (it is not a dependency of memgen). torchvision's Inception-v3 is
  the ImageNet classifier, not the TensorFlow FID network: Fréchet distances in its features are
  meaningful for comparisons within one study but are not the published FID (:mod:`compare.fid`).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from memgen.checks import integer
from memgen.contract import model_device

TORCHVISION_NETWORKS = {"inception_v3": 299, "resnet50": 224}
"""Built-in torchvision feature networks and their input size."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pixels(x: torch.Tensor) -> torch.Tensor:
    """Pixel space: ``phi(x) = vec(x)``, ``[B, *shape] -> [B, prod(shape)]``."""
    return torch.as_tensor(x).reshape(len(x), -1)


class FeatureMap:
    """``phi(x)`` of a module or callable, in batches of ``batch_size``, returned as float32 ``[B, f]`` on the CPU.

    A module is put in eval mode and called without gradients on its own device; ``preprocess`` (a
    callable on the batch, on that device) runs first.
    """

    def __init__(self, fn, *, preprocess=None, batch_size: int = 256, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"fn: expected a torch.nn.Module or a callable [B, *shape] -> [B, f], "
                            f"got {type(fn).__name__}")
        if preprocess is not None and not callable(preprocess):
            raise TypeError(f"preprocess: expected a callable or None, got {type(preprocess).__name__}")
        self.fn, self.preprocess = fn, preprocess
        self.batch_size = integer(batch_size, "batch_size")
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        if isinstance(fn, nn.Module):
            fn.eval()

    def __call__(self, x) -> torch.Tensor:
        x = torch.as_tensor(x)
        device = model_device(self.fn)
        outs = []
        with torch.no_grad():
            for xb in x.split(self.batch_size):
                xb = xb.to(device, torch.float32)
                if self.preprocess is not None:
                    xb = self.preprocess(xb)
                f = torch.as_tensor(self.fn(xb))
                if f.dim() < 1 or f.shape[0] != len(xb):
                    raise ValueError(f"feature map {self.name}: returned shape {tuple(f.shape)} for a batch of {len(xb)}")
                outs.append(f.reshape(len(xb), -1).float().cpu())
        return torch.cat(outs)


def image_preprocess(size: int, *, imagenet_normalize: bool):
    """Images ``[B, C, H, W]`` in [-1, 1] -> ``[B, 3, size, size]`` (bilinear resize, 1 channel repeated to 3),
    kept in [-1, 1] or, with ``imagenet_normalize``, mapped to [0, 1] and standardized by the ImageNet statistics."""
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images: expected [B, 1 or 3, H, W] images, got shape {tuple(x.shape)}")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        if tuple(x.shape[2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        if not imagenet_normalize:
            return x
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).reshape(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).reshape(1, 3, 1, 1)
        return ((x + 1) / 2 - mean) / std
    return preprocess


def torchvision_features(name: str, weights, *, device="cpu", batch_size: int = 64) -> FeatureMap:
    """The 2048 pooled features of torchvision's ``name`` (``'inception_v3'`` or ``'resnet50'``) with the
    ``state_dict`` in the local file ``weights`` (module docstring). Raises FileNotFoundError naming the file
    when it is missing, and ImportError naming torchvision when that is not installed."""
    if name not in TORCHVISION_NETWORKS:
        raise ValueError(f"name: expected one of {sorted(TORCHVISION_NETWORKS)}, got {name!r}")
    if weights is None:
        raise ValueError(f"weights: the {name} feature map needs a local weights file (a state_dict); "
                         "memgen never downloads weights")
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights: no weights file {path} for {name}; save the network's state_dict there")
    try:
        import torchvision
    except ImportError as e:
        raise ImportError(f"the {name} feature map needs torchvision (pip install torchvision matching your "
                          f"torch {torch.__version__}); it is not a dependency of memgen") from e
    if name == "inception_v3":
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    else:
        net = torchvision.models.resnet50(weights=None)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    size = TORCHVISION_NETWORKS[name]
    return FeatureMap(net.to(device), preprocess=image_preprocess(size, imagenet_normalize=name == "resnet50"),
                      batch_size=batch_size, name=name)


def feature_map(spec=None, *, weights=None, device="cpu", batch_size: int = 256):
    """A feature map from a spec: None/``'pixels'``, a module or callable, or a torchvision network name
    (with ``weights``, a local file). See the module docstring."""
    if spec is None or spec == "pixels":
        return pixels
    if isinstance(spec, str):
        if spec not in TORCHVISION_NETWORKS:
            raise ValueError(f"feature_map: expected 'pixels', one of {sorted(TORCHVISION_NETWORKS)}, a module "
                             f"or a callable, got {spec!r}")
        return torchvision_features(spec, weights, device=device, batch_size=min(int(batch_size), 64))
    if isinstance(spec, FeatureMap):
        return spec
    return FeatureMap(spec, batch_size=batch_size)
