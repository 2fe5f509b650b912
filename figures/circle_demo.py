"""The figures of ``memgen demo``: the optimal and the error-prone denoiser side by side on the 20-point circle.

On Kaiser & Kollmann's toy (20 points on a circle of radius 10, alternately train and validation)
:func:`run_demo` writes, into ``out`` (``memgen demo --out``, default ``memgen-out/``):

* ``flow_fields.png``: streamplots of ``D(x, sigma) - x`` for the optimal (empirical) and the smoothed
  denoiser at a small, a middle and a large sigma, the identity-like region ``||D - x|| < sigma`` shaded;
* ``samples.png``: samples of each model (optimal, smoothed, fitted Gaussian) beside the training points;
* ``circle_panels.png`` (+ ``circle_gap.csv``, ``circle_trajectories.csv``): the generalization gap
  ``(E_val - E_train) / E_train`` of the smoothed denoiser vs sigma for several delta with its peak
  fitted in log sigma (as claim 2 of ``memgen report`` locates it), and the
  nearest-training-point distance and typicality of sampling trajectories vs sigma
  (:func:`figures.circle_panels.gap_and_trajectory_panels`);
* ``summary.csv`` / ``summary.json``: per model, the fraction of samples within 1% of the radius of a
  training point and the mean distance to the nearest training point;
* ``record.json``: configuration, seed, split and package versions.
"""
from __future__ import annotations

from pathlib import Path

DEFAULTS = {"seed": 0, "samples": 400, "steps": 40, "delta": 1.6, "sigmas": (0.3, 3.0, 15.0)}


def build_models(train, delta: float) -> dict:
    """The three closed-form models compared by the demo, all fitted to the same training points."""
    import torch

    from toymodels import EmpiricalDenoiser, GaussianDenoiser, SmoothedDenoiser

    return {
        "optimal": EmpiricalDenoiser(train, dtype=torch.float64),
        f"smoothed (delta={delta:g})": SmoothedDenoiser(train, delta, dtype=torch.float64),
        "gaussian (fitted)": GaussianDenoiser.fit(train, dtype=torch.float64),
    }


def flow_field_figure(models: dict, data, sigmas, path, *, extent: float = 16.0, grid: int = 121):
    """Streamplots of ``D(x, sigma) - x`` (rows: models, columns: sigma); grey: ``||D - x|| < sigma``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from memgen.run_files import atomic_save_figure

    axis = np.linspace(-extent, extent, grid)
    gx, gy = np.meshgrid(axis, axis)
    pts = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float64)
    fig, axes = plt.subplots(len(models), len(sigmas), figsize=(4.2 * len(sigmas), 4.2 * len(models)),
                             squeeze=False, constrained_layout=True)
    for r, (name, model) in enumerate(models.items()):
        for c, sigma in enumerate(sigmas):
            ax = axes[r, c]
            v = (model(pts, sigma) - pts).numpy()
            mag = np.linalg.norm(v, axis=1).reshape(gx.shape)
            ax.contourf(gx, gy, (mag < sigma).astype(float), levels=[0.5, 1.5], colors=["0.85"])
            ax.streamplot(gx, gy, v[:, 0].reshape(gx.shape), v[:, 1].reshape(gx.shape),
                          color=np.log10(mag + 1e-12), cmap="viridis", density=1.1, linewidth=0.7, arrowsize=0.7)
            ax.scatter(*data.train.T, c="crimson", s=22, zorder=3, label="train")
            ax.scatter(*data.val.T, facecolors="none", edgecolors="k", s=22, zorder=3, label="validation")
            ax.set_title(f"{name}, sigma = {sigma:g}", fontsize=10)
            ax.set_aspect("equal")
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_xlabel("x1")
            ax.set_ylabel("x2")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    fig.suptitle("Flow field D(x, sigma) - x (colour: log10 magnitude); grey: identity-like region ||D - x|| < sigma")
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)


def samples_figure(samples: dict, data, path, *, extent: float = 16.0):
    """One panel per model: its samples (blue) beside the training (red) and validation (circles) points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memgen.run_files import atomic_save_figure

    fig, axes = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 4.4), squeeze=False,
                             constrained_layout=True)
    for ax, (name, x) in zip(axes[0], samples.items()):
        ax.scatter(*x.T, s=6, alpha=0.5, zorder=4, label=f"{len(x)} samples")
        ax.scatter(*data.train.T, c="crimson", s=22, label="train")
        ax.scatter(*data.val.T, facecolors="none", edgecolors="k", s=22, label="validation")
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.legend(loc="upper right", fontsize=7)
    fig.suptitle("Samples (Heun, probability-flow ODE) beside the training points")
    atomic_save_figure(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)


def sample_summary(name: str, x, train, radius: float) -> dict:
    """``near``: fraction of samples within ``0.01 * radius`` of a training point; ``mean_nn``: mean nearest distance."""
    from compare import nearest_two

    nn = nearest_two(x, train, dtype=x.dtype, progress=False).distances[:, 0]
    return {"model": name, "samples": len(x), "near_fraction": float((nn < 0.01 * radius).double().mean()),
            "mean_nn_distance": float(nn.mean())}


def run_demo(out="memgen-out", *, seed: int = DEFAULTS["seed"], samples: int = DEFAULTS["samples"],
             steps: int = DEFAULTS["steps"], delta: float = DEFAULTS["delta"], sigmas=DEFAULTS["sigmas"]):
    """Run the demo into ``out``; returns the summary rows (one per model) and the circle panels' summary."""
    import torch

    from memgen import edm_sigmas, sample
    from memgen.data import circle
    from figures.circle_panels import gap_and_trajectory_panels
    from compare.records import Records
    from memgen.progress import progress_bar
    from memgen.run_files import atomic_write_json, write_record

    out = Path(out)
    bar = progress_bar(total=3, desc="demo: flow fields", unit="stage")  # stages, on a terminal only
    data = circle()
    models = build_models(data.train, delta)
    flow_field_figure({k: v for k, v in models.items() if not k.startswith("gaussian")}, data, sigmas,
                      out / "flow_fields.png")
    bar.update()
    bar.set_description("demo: samples")
    noise = torch.randn(samples, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grid = edm_sigmas(steps, sigma_min=0.002, sigma_max=80.0)
    drawn = {name: sample(m, noise, grid, method="heun") for name, m in models.items()}
    samples_figure(drawn, data, out / "samples.png")
    rows = [sample_summary(name, x, data.train, data.params["radius"]) for name, x in drawn.items()]
    bar.update()
    bar.set_description("demo: gap and trajectories")
    _, panels = gap_and_trajectory_panels(out, delta=delta, seed=seed)
    bar.update()
    bar.close()
    Records(rows).to_csv(out / "summary.csv")
    atomic_write_json(out / "summary.json", {"samples": rows, **panels})
    write_record(out, command="memgen demo", seed=seed, config={"samples": samples, "steps": steps, "delta": delta,
                 "sigmas": list(sigmas), "sampler": "heun", "sigma_max": 80.0, "sigma_min": 0.002},
                 data=data.describe())
    return rows, panels
