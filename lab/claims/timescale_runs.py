"""The runs of claim 5 (Bonnaire et al.'s two time scales): one network per training-set size n, one step budget.

A set-up is a network on a data set with a list of sizes and one step budget ``steps``. For each n, one run of
:func:`neural.train` on the first n points of a fixed permutation of the split's training set (``data.subset``:
the sets are nested), with batch ``min(n, batch_max)`` and the same ``steps`` for every n, measured at every
checkpoint of a log grid on fixed probes and sampling noise: the replicate fraction (``d1 / d2 < 1/3``, whose
crossing of 0.1 is tau_mem) and the validation denoising error ``e_val`` of the fixed probes at the probe noise
level nearest :data:`QUALITY_SIGMA` (the generalization measure whose settling time is tau_gen).

Why one budget: a budget that grows with n (``steps ∝ n``) gives every size the same chance to memorize in units
of n, which is the very scaling the claim tests; with one budget, a size whose tau_mem exceeds it is censored
(never memorized within the budget) and is reported as such. Why ``e_val`` and not the sliced Wasserstein
distance of the samples to held-out data: on 8x8 Mondrian images the latter is best at initialization (a probe,
n = 32: 0.105 at step 5, 0.166 at step 119), so its "settling time" is the first checkpoint; ``e_val`` at sigma
0.57 falls from the first checkpoint on digits (0.225 -> 0.112 by step 667) and on Mondrian (0.164 -> 0.147 by
step 119). Bonnaire et al. train with batch ``min(n, 512)`` and every n of theirs is at least 512, so their batch
is fixed; at sizes below the batch the claim's settings fix it the same way, at the smallest n.
"""
from __future__ import annotations

QUALITY = "e_val"
"""The quality column (lower is better): the validation probes' denoising error, a per-sigma list."""

QUALITY_SIGMA = 0.5
"""tau_gen reads ``e_val`` at the probe noise level nearest this sigma (0.57 on the default 16-level grid)."""

_MEASURE = {"train.first_checkpoint": 5, "train.checkpoints_per_decade": 8, "measure.probes": 64, "measure.sigmas": 16}


def mlp_setup(d: int, sizes, *, steps: int, batch_max: int = 512, samples: int = 1000, n_val: int = 2000,
              lr: float = 1e-3) -> dict:
    """The residual MLP on Bonnaire et al.'s mixture (two Gaussians at ±1, unit variance) in ``d`` dimensions."""
    n_max = max(sizes)
    params = {"n": n_max + n_val, "d": d, "n_train": n_max}
    return dict(name=f"MLP, GMM d={d}", sizes=tuple(sizes), steps=int(steps), batch_max=batch_max,
                overrides={"data.name": "gmm", "data.params": params, "model.preset": "mlp-small", "train.lr": lr,
                           **_MEASURE, "measure.samples": samples, "measure.batch_size": 1000,
                           "measure.metrics": ["gap", "replicates", "sliced_wasserstein"]})


def image_setup(data: str, sizes, *, steps: int, params: dict | None = None, width: int | None = None,
                batch_max: int = 512, samples: int = 256, lr: float = 1e-3, preset: str = "mlp-small") -> dict:
    """A network ``preset`` (default the residual MLP on the pixels; ``width`` overrides its width) on the image
    data set ``data`` of :mod:`memgen.data` with ``params`` (e.g. scikit-learn's 8x8 digits, real data, or 8x8
    Mondrian images): the first ``max(sizes)`` of a seeded split train, the other images are held out."""
    split = {**(params or {}), "n_train": max(sizes)}
    model = {} if width is None else {"model.params": {"width": int(width)}}
    return dict(name=f"{preset}{'' if width is None else f' width {width}'}, {data}", sizes=tuple(sizes),
                steps=int(steps), batch_max=batch_max,
                overrides={"data.name": data, "data.params": split, "model.preset": preset, **model, "train.lr": lr,
                           **_MEASURE, "measure.samples": samples, "measure.batch_size": samples,
                           "measure.fidelity": "compare.fidelity:sliced_wasserstein"})


def run_overrides(setup: dict, n: int) -> dict:
    """The config values (``{'section.key': value}``) of one run (trained by :func:`lab.claims.networks.trained`,
    which adds the seed): the set-up's, with n points, ``min(n, batch_max)`` per batch and the set-up's ``steps``
    whatever n."""
    steps = setup["steps"]
    return {**setup["overrides"], "data.subset": n, "train.batch_size": min(n, setup["batch_max"]),
            "train.steps": steps, "train.save_every": steps}
