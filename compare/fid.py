"""The standard FID: Inception pool3 statistics of the TensorFlow FID network, through torchmetrics.

``FID = ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` of Gaussians fitted to the 2048 pool3
features of the Inception network of the original FID (TensorFlow weights of 2015-12-05), with images
resized to 299 x 299 the way that network expects. We use torchmetrics' ``FrechetInceptionDistance``
(chosen over clean-fid and pytorch-fid because it is maintained by the Lightning team, wraps
torch-fidelity's port of the TensorFlow network, which reproduces the reference feature values, and takes
the weights from a local file through ``feature_extractor_weights_path``, so nothing is downloaded).
It needs torchmetrics with its image extra (torch-fidelity and torchvision): ``pip install 'memgen[fid]'``.
This path is optional: torchvision is not a memgen dependency, and memgen's own test machines cannot
install it, so only its error messages are tested there. For any other feature space (pixels, a module,
torchvision's Inception-v3 of :mod:`compare.features`) use :func:`compare.fidelity.frechet_distance`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from memgen.checks import as_points, integer


def check_fid(weights, shape=None, *, name: str = "weights") -> Path:
    """Raise, before any work, what would stop :func:`inception_fid` (each message starting with ``name``): images
    of ``shape`` (one image's, when given) that are not RGB ``[3, H, W]``, no file ``weights``, or torchmetrics
    with torch-fidelity and torchvision not importable. Returns the weights' path."""
    if shape is not None and (len(shape) != 3 or shape[0] != 3):
        raise ValueError(f"{name}: the FID needs RGB images [3, H, W], the data are {list(shape)}; leave the FID out")
    path = Path(weights) if weights is not None else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{name}: no FID Inception weights file {path}; pass the local path of "
                                "weights-inception-2015-12-05-6726825d.pth (memgen never downloads weights)")
    try:
        import torchmetrics.image.fid  # noqa: F401
    except ImportError as e:
        raise ImportError(f"{name}: the FID needs torchmetrics with torch-fidelity and torchvision: "
                          "pip install 'memgen[fid]'") from e
    return path


def inception_fid(samples, reference, weights, *, device="cpu", batch_size: int = 64) -> float:
    """FID between ``samples`` and ``reference`` (images ``[N, 3, H, W]`` in [-1, 1]), with the FID Inception
    weights in the local file ``weights`` (torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``)."""
    path = check_fid(weights)
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = as_points(samples, "samples"), as_points(reference, "reference")
    for name, x in (("samples", a), ("reference", b)):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{name}: expected RGB images [N, 3, H, W], got shape {tuple(x.shape)}")
    batch_size = integer(batch_size, "batch_size")
    metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(path)).to(device)
    with torch.no_grad():
        for x, real in ((b, True), (a, False)):
            for xb in x.split(batch_size):
                metric.update(((xb.float() + 1) / 2).clamp(0, 1).to(device), real=real)
        return float(metric.compute())
