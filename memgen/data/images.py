"""Yoon et al.'s synthetic image distributions (Mondrian, Gaussian-mixture dummies, Random Ink) and their mixtures.

Every image is drawn with values in [0, 1] and stored as ``2 u - 1``: float32 in [-1, 1], shape
``[N, 3, size, size]``. A numpy ``default_rng(seed)`` draws everything, so the same arguments give
the same images. By default every image trains (``n_train=None``: empty validation set), as in the
paper; pass ``n_train`` for a seeded train/validation split.
"""
from __future__ import annotations

import numpy as np
import torch

from memgen.checks import integer, non_negative

from .dataset import Dataset
from .split import seeded_split


def _signed(u: np.ndarray) -> torch.Tensor:
    """``[0, 1] -> [-1, 1]``: ``2 u - 1`` as float32."""
    return torch.as_tensor((2 * u - 1).astype(np.float32))


def mondrian_bar_width(size: int) -> int:
    """Default width in pixels of each Mondrian bar: ``max(1, size // 8)`` (4 at 32x32)."""
    return max(1, int(size) // 8)


def mondrian(n: int = 2000, *, size: int = 32, seed: int = 0, n_train: int | None = None,
             bar_width: int | None = None) -> Dataset:
    """Yoon et al.'s Mondrian images: a cross of random pixels between four flat-coloured quadrants.

    Construction of one ``size x size`` RGB image (values in [0, 1], then ``2 u - 1``):

    * a horizontal bar (rows ``r .. r+w-1``) and a vertical bar (columns ``c .. c+w-1``) of width
      ``w = bar_width`` (default ``max(1, size // 8)``) form the cross; ``r`` and ``c`` are independent and
      uniform on ``{1, ..., size - w - 1}`` so that each of the four quadrants keeps at least one pixel;
    * every channel value of every pixel on the cross is i.i.d. ``U[0, 1]``;
    * each quadrant (top-left, top-right, bottom-left, bottom-right) has one colour whose three channel
      values are i.i.d. ``U[0, 1]``, shared by all its pixels.

    The paper states the cross of i.i.d. uniform RGB pixels and the uniformly coloured quadrants; it gives
    neither the bar width nor the law of the bar positions, so these are our choices (stated above).
    ``truth`` holds the rule (``bar_width``) and each image's bar positions (``bar_row``, ``bar_col``).
    """
    n, size, seed = integer(n, "n"), integer(size, "size", 3), integer(seed, "seed", 0)
    w = mondrian_bar_width(size) if bar_width is None else integer(bar_width, "bar_width")
    if size < w + 2:
        raise ValueError(f"bar_width: a {w}-pixel cross leaves no quadrant in a {size}x{size} image; "
                         f"need size >= bar_width + 2")
    rng = np.random.default_rng(seed)
    img = rng.random((n, 3, size, size), dtype=np.float32)
    colours = rng.random((n, 4, 3), dtype=np.float32)
    r = rng.integers(1, size - w, size=n)
    c = rng.integers(1, size - w, size=n)
    ax = np.arange(size)
    rows = (ax < r[:, None], ax >= r[:, None] + w)                   # top, bottom: [n, size]
    cols = (ax < c[:, None], ax >= c[:, None] + w)                   # left, right
    quadrants = ((rows[0], cols[0]), (rows[0], cols[1]), (rows[1], cols[0]), (rows[1], cols[1]))
    for q, (rm, cm) in enumerate(quadrants):
        inside = (rm[:, :, None] & cm[:, None, :])[:, None]           # [n, 1, size, size]
        img = np.where(inside, colours[:, q, :, None, None], img)
    return Dataset("mondrian", _signed(img), seeded_split(n, n_train, seed),
                   labels=torch.zeros(n, dtype=torch.int64), classes=["mondrian"],
                   params={"n": n, "size": size, "seed": seed, "n_train": n_train, "bar_width": bar_width},
                   truth={"bar_width": w, "bar_row": torch.as_tensor(r), "bar_col": torch.as_tensor(c)})


def gm_dummies(n: int = 6000, *, size: int = 32, seed: int = 0, n_templates: int = 100, std: float = 0.5,
               template_seed: int = 0, n_train: int | None = None) -> Dataset:
    """Yoon et al.'s Gaussian-mixture dummy images: a noisy copy of one of ``n_templates`` fixed images.

    ``n_templates`` templates ``T_k`` of i.i.d. ``U[0, 1]`` channel values are fixed by ``template_seed``
    (the same for every ``seed``); each image picks ``k`` uniformly and is
    ``clip(T_k + std * z, 0, 1)`` with ``z ~ N(0, I)`` (``std = 0.5`` in [0, 1] units: the paper's), then ``2 u - 1``.
    ``truth`` holds the templates (in [-1, 1]), ``std`` and each image's ``component`` ``k``.
    """
    n, size, n_templates = integer(n, "n"), integer(size, "size"), integer(n_templates, "n_templates")
    std, seed, template_seed = non_negative(std, "std"), integer(seed, "seed", 0), integer(template_seed, "template_seed", 0)
    templates = np.random.default_rng(template_seed).random((n_templates, 3, size, size), dtype=np.float32)
    rng = np.random.default_rng(seed)
    k = rng.integers(0, n_templates, size=n)
    img = np.clip(templates[k] + np.float32(std) * rng.standard_normal((n, 3, size, size), dtype=np.float32), 0, 1)
    return Dataset("gm_dummies", _signed(img), seeded_split(n, n_train, seed),
                   labels=torch.zeros(n, dtype=torch.int64), classes=["gm_dummies"],
                   params={"n": n, "size": size, "seed": seed, "n_templates": n_templates, "std": std,
                           "template_seed": template_seed, "n_train": n_train},
                   truth={"templates": _signed(templates), "std": std, "component": torch.as_tensor(k)})


def random_ink(n: int = 100, *, size: int = 32, seed: int = 0, n_train: int | None = None) -> Dataset:
    """Yoon et al.'s Random Ink images: every channel value of every pixel i.i.d. Bernoulli(1/2) on {0, 1}.

    Stored as {-1, 1}.
    """
    n, size, seed = integer(n, "n"), integer(size, "size"), integer(seed, "seed", 0)
    bits = np.random.default_rng(seed).integers(0, 2, size=(n, 3, size, size)).astype(np.float32)
    return Dataset("random_ink", _signed(bits), seeded_split(n, n_train, seed),
                   labels=torch.zeros(n, dtype=torch.int64), classes=["random_ink"],
                   params={"n": n, "size": size, "seed": seed, "n_train": n_train})


SYNTHETIC = {"mondrian": mondrian, "gm_dummies": gm_dummies, "random_ink": random_ink}


def mixture(parts, *, size: int = 32, seed: int = 0, n_train: int | None = None) -> Dataset:
    """A labelled mixture of data sets, e.g. ``mixture({"mondrian": 2000, "gm_dummies": 6000})``.

    ``parts`` maps (dict, or a list of ``(name, part)`` pairs) each class name to either a count of images
    of the synthetic set of that name (one of ``mondrian``, ``gm_dummies``, ``random_ink``, drawn at
    ``size`` with its own seed spawned from ``seed`` by ``numpy.random.SeedSequence``), or a ready
    :class:`Dataset` whose images ``x`` join as they are (e.g. 2k CIFAR-10 cars next to GM dummies).
    A Dataset part is recorded in ``params`` by its loader's name and parameters (rebuild it with
    ``memgen.data.load``). Images are concatenated in the order of ``parts``; ``labels[i]`` is the index
    of image i's part and ``classes`` are the part names. ``n_train`` and ``seed`` split the whole set
    (None: all train).
    """
    size, seed = integer(size, "size"), integer(seed, "seed", 0)
    if not isinstance(parts, (dict, list, tuple)):
        raise TypeError(f"parts: expected a dict or a list of (name, count or Dataset) pairs, got {type(parts).__name__}")
    items = list(parts.items()) if isinstance(parts, dict) else list(parts)
    if not items or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in items):
        raise ValueError("parts: expected a non-empty dict or list of (name, count or Dataset) pairs")
    names = [str(name) for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"parts: class names must be unique, got {names}")
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(items))]
    xs, recorded = [], []
    for (name, part), part_seed in zip(items, seeds):
        if isinstance(part, Dataset):
            xs.append(part.x)
            recorded.append([name, {"dataset": part.name, "params": part.params}])
            continue
        if name not in SYNTHETIC:
            raise ValueError(f"parts: {name!r} is neither a synthetic set ({sorted(SYNTHETIC)}) nor given a Dataset")
        xs.append(SYNTHETIC[name](integer(part, f"parts[{name!r}]"), size=size, seed=part_seed).x)
        recorded.append([name, int(part)])
    shapes = {tuple(x.shape[1:]) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"parts: all parts need the same image shape, got {sorted(shapes)}")
    labels = torch.cat([torch.full((len(x),), k, dtype=torch.int64) for k, x in enumerate(xs)])
    x = torch.cat([x.float() for x in xs])
    return Dataset("mixture", x, seeded_split(len(x), n_train, seed), labels=labels, classes=names,
                   params={"parts": recorded, "size": size, "seed": seed, "n_train": n_train})
