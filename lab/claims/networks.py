"""Training the claims' networks through ``neural.train`` and reading them back: one run folder per
(configuration, seed), so a finished run is reused and a killed one resumes where it stopped."""
from __future__ import annotations

import hashlib
from pathlib import Path

from lab.run_metrics import METRICS
from neural import Config, list_checkpoints, load_denoiser, read_metrics, train, with_values
from neural.config import toml_value


def override_lines(values: dict) -> list:
    """``values`` (``{'section.key': value}``) as ``section.key=value`` lines, the canonical text of a run that
    :func:`run_folder` hashes: a string bare (``data.name=gmm``), any other value as TOML (``train.lr=0.001``,
    ``data.params={n = 40, d = 2}``, ``measure.metrics=["gap"]``), in the mapping's order."""
    return [f"{key}={value if isinstance(value, str) else toml_value(value)}" for key, value in values.items()]


def run_folder(runs_dir, values: dict, seed: int) -> Path:
    """``runs_dir/<12 hex digits of the values and seed>``: the same experiment always lands in one folder."""
    key = hashlib.sha1(("\n".join(override_lines(values)) + f"\nseed={seed}").encode()).hexdigest()[:12]
    return Path(runs_dir) / key


def run_config(values: dict, seed: int) -> Config:
    """The config of the run of ``values`` (``{'section.key': value}`` on the defaults) with ``seed``: trained and
    measured with that seed, on one thread. (On ``{}``, not ``Config()``: a set-up may still name an old
    ``measure.fidelity``, which :meth:`Config.from_dict` turns into ``measure.metrics``.)"""
    return with_values({}, {**values, "train.seed": int(seed), "measure.seed": int(seed), "train.threads": 1,
                             "train.progress": False, "train.device": "auto"})


def trained(runs_dir, values: dict, seed: int) -> Path:
    """Train (or resume, or reuse) the run of ``values`` with ``seed`` on one thread; its folder."""
    return train(run_config(values, seed), run_folder(runs_dir, values, seed), metrics=METRICS)


def final_row(run) -> dict:
    """The last measured row of a run's metrics."""
    return read_metrics(run)[-1]


def checkpoint_models(run):
    """``[(step, denoiser)]`` of every saved grid checkpoint (EMA weights), on the CPU."""
    return [(step, load_denoiser(path, ema=True, device="cpu")) for step, path in list_checkpoints(run)]
