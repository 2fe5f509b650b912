"""The runs of claim 5 (Bonnaire et al.'s two time scales): one network per training-set size n.

A set-up is a network on a data set with a list of sizes. For each n, one run of :func:`neural.train` on
the first n points of a fixed permutation of the split's training set (``data.subset``: the sets are
nested), with batch ``min(n, batch_max)`` and ``steps_per_n * n`` steps, measured at every checkpoint of a
log grid on fixed sampling noise: the replicate fraction (``d1 / d2 < 1/3``) and the sliced Wasserstein
distance of the samples to held-out data (the quality whose plateau defines tau_gen). Bonnaire et al.
train with batch ``min(n, 512)`` and every n of theirs is at least 512, so their batch is fixed; at
sizes below the batch the claim's settings fix it the same way, at the smallest n.
"""
from __future__ import annotations

from neural.config import toml_value


def mlp_setup(d: int, sizes, *, steps_per_n: int = 200, batch_max: int = 512, samples: int = 1000,
              n_val: int = 2000, lr: float = 1e-3) -> dict:
    """The residual MLP on Bonnaire et al.'s mixture (two Gaussians at ±1, unit variance) in ``d`` dimensions."""
    n_max = max(sizes)
    return dict(name=f"MLP, GMM d={d}", sizes=tuple(sizes), steps_per_n=steps_per_n, batch_max=batch_max,
                quality="sliced_wasserstein_val",
                overrides=["data.name=gmm", f"data.params={{n = {n_max + n_val}, d = {d}, n_train = {n_max}}}",
                           "model.preset=mlp-small", f"train.lr={lr}", "train.first_checkpoint=5",
                           "train.checkpoints_per_decade=8", "measure.probes=64", "measure.sigmas=16",
                           f"measure.samples={samples}", "measure.batch_size=1000",
                           'measure.metrics=["gap", "replicates", "sliced_wasserstein"]'])


def image_setup(data: str, sizes, *, params: dict | None = None, width: int | None = None, steps_per_n: int = 100,
                batch_max: int = 512, samples: int = 256, lr: float = 1e-3, preset: str = "mlp-small") -> dict:
    """A network ``preset`` (default the residual MLP on the pixels; ``width`` overrides its width) on the image
    data set ``data`` of :mod:`memgen.data` with ``params`` (e.g. scikit-learn's 8x8 digits, real data, or 8x8
    Mondrian images): the first ``max(sizes)`` of a seeded split train, the other images are held out."""
    split = toml_value({**(params or {}), "n_train": max(sizes)})
    model = [] if width is None else [f"model.params={{width = {int(width)}}}"]
    return dict(name=f"{preset}{'' if width is None else f' width {width}'}, {data}", sizes=tuple(sizes),
                steps_per_n=steps_per_n, batch_max=batch_max, quality="sliced_wasserstein_val",
                overrides=[f"data.name={data}", f"data.params={split}", f"model.preset={preset}", *model,
                           f"train.lr={lr}", "train.first_checkpoint=5", "train.checkpoints_per_decade=8",
                           "measure.probes=64", "measure.sigmas=16", f"measure.samples={samples}",
                           f"measure.batch_size={samples}", "measure.fidelity=compare.fidelity:sliced_wasserstein"])


def run_overrides(setup: dict, n: int) -> list:
    """The overrides of one run (trained by :func:`figures.claims.networks.trained`, which adds the seed): the
    set-up's, with n points, ``min(n, batch_max)`` per batch and ``steps_per_n * n`` steps."""
    steps = setup["steps_per_n"] * n
    return [*setup["overrides"], f"data.subset={n}", f"train.batch_size={min(n, setup['batch_max'])}",
            f"train.steps={steps}", f"train.save_every={steps}"]
