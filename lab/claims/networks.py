"""Training the claims' networks through ``neural.train`` and reading them back: one run folder per
(configuration, seed), so a finished run is reused and a killed one resumes where it stopped."""
from __future__ import annotations

import hashlib
from pathlib import Path

from lab.run_metrics import METRICS
from neural import list_checkpoints, load_config, load_denoiser, read_metrics, train


def run_folder(runs_dir, overrides, seed: int) -> Path:
    """``runs_dir/<12 hex digits of the overrides and seed>``: the same experiment always lands in one folder."""
    key = hashlib.sha1(("\n".join(overrides) + f"\nseed={seed}").encode()).hexdigest()[:12]
    return Path(runs_dir) / key


def run_config(overrides, seed: int):
    """The config of the run of ``overrides`` with ``seed``: trained and measured with that seed, on one thread."""
    return load_config(None, [*overrides, f"train.seed={seed}", f"measure.seed={seed}", "train.threads=1",
                              "train.progress=false", "train.device=auto"])


def trained(runs_dir, overrides, seed: int) -> Path:
    """Train (or resume, or reuse) the run of ``overrides`` with ``seed`` on one thread; its folder."""
    return train(run_config(overrides, seed), run_folder(runs_dir, overrides, seed), metrics=METRICS)


def final_row(run) -> dict:
    """The last measured row of a run's metrics."""
    return read_metrics(run)[-1]


def checkpoint_models(run):
    """``[(step, denoiser)]`` of every saved grid checkpoint (EMA weights), on the CPU."""
    return [(step, load_denoiser(path, ema=True, device="cpu")) for step, path in list_checkpoints(run)]
