"""Training the claims' networks through ``neural.train`` and reading them back: one run folder per
(configuration, seed), so a finished run is reused and a killed one resumes where it stopped."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from compare.errors import point_errors
from compare.peaks import gap_peak
from figures.run_metrics import METRICS
from neural import list_checkpoints, load_config, load_denoiser, read_metrics, train


def run_folder(runs_dir, overrides, seed: int) -> Path:
    """``runs_dir/<12 hex digits of the overrides and seed>``: the same experiment always lands in one folder."""
    key = hashlib.sha1(("\n".join(overrides) + f"\nseed={seed}").encode()).hexdigest()[:12]
    return Path(runs_dir) / key


def trained(runs_dir, overrides, seed: int) -> Path:
    """Train (or resume, or reuse) the run of ``overrides`` with ``seed`` on one thread; its folder."""
    cfg = load_config(None, [*overrides, f"train.seed={seed}", f"measure.seed={seed}", "train.threads=1",
                             "train.progress=false", "train.device=auto"])
    return train(cfg, run_folder(runs_dir, overrides, seed), metrics=METRICS)


def final_row(run) -> dict:
    """The last measured row of a run's metrics."""
    return read_metrics(run)[-1]


def checkpoint_models(run):
    """``[(step, denoiser)]`` of every saved grid checkpoint (EMA weights), on the CPU."""
    return [(step, load_denoiser(path, ema=True, device="cpu")) for step, path in list_checkpoints(run)]


def gap_peak_of(model, train, val, sigmas, *, seed: int = 0, n_boot: int = 300) -> dict:
    """:func:`compare.peaks.gap_peak` of ``model`` with squared errors and fixed noise (``seed``)."""
    g = torch.Generator().manual_seed(int(seed))
    nt, nv = torch.randn(train.shape, generator=g), torch.randn(val.shape, generator=g)
    et = point_errors(model, train, sigmas, noise=nt, progress=False)
    ev = point_errors(model, val, sigmas, noise=nv, progress=False)
    out = gap_peak(et, ev, sigmas, n_boot=n_boot, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["curve"] = ((ev.mean(0) - et.mean(0)) / et.mean(0)).tolist()
    return out
