"""Training a denoiser into a run folder, resumable exactly, measured at every grid checkpoint.

:func:`train` reads as its steps: the run folder (:func:`neural.rundir.open_run`), :func:`load_training_data`, :func:`build_run`
and :func:`loss_step_function`, :func:`resume`, then the loop of :func:`neural.step.optimizer_step` (one
optimizer step, a function of the step index alone) and :func:`save`.
At each step of the log-spaced grid (:func:`neural.checkpoint.checkpoint_steps`) the weights are saved,
the model is measured with the metrics the caller passed (:class:`neural.measure.Measurement`) and one
row is appended to ``metrics.jsonl``; ``latest.pt`` (weights, EMA, optimizer, step, loss accumulators) is rewritten there
and every ``save_every`` steps. A run folder that holds ``latest.pt`` resumes from it; rows measured
after it (lost work of a killed run) are dropped and measured again.

A run that diverges stops with :class:`Diverged` naming the step and its loss: a NaN or infinite loss
(checked every step) or NaN or infinite weights (checked before every save), so ``latest.pt`` keeps
the last finite state.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import memgen.data
from memgen.checks import all_finite
from memgen.progress import progress_bar
from memgen.run_files import METRICS_FILE, write_record
from memgen.threads import cpu_threads

from . import checkpoint as ckpt
from .config import Config, as_config
from .ddp import Context, mean_over_processes, setup, teardown
from .losses import LOSSES
from .measure import Measurement
from .optim import OPTIMIZERS
from .presets import count_parameters, model_from_config
from .rundir import open_run
from .step import DataOrder, optimizer_step



@dataclass
class TrainingData:
    """The data set, the indices of the points trained on, and those points (and labels) on the device."""

    data: memgen.data.Dataset
    train_index: np.ndarray
    y: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int | None


def load_training_data(cfg: Config, device) -> TrainingData:
    """The training split, or its nested ``data.subset`` (the first points of a seeded permutation)."""
    data = memgen.data.load(cfg.data.name, **cfg.data.params)
    train_index = np.asarray(data.split.train)
    if cfg.data.subset:
        if cfg.data.subset > len(train_index):
            raise ValueError(f"data.subset: {cfg.data.subset} exceeds the {len(train_index)} training points")
        train_index = train_index[np.random.default_rng(cfg.data.subset_seed).permutation(len(train_index))]
        train_index = train_index[:cfg.data.subset]
    num_classes = None
    if cfg.model.class_conditional:
        if data.labels is None:
            raise ValueError(f"model.class_conditional: the data set {data.name!r} has no labels")
        num_classes = len(data.classes) if data.classes else int(data.labels.max()) + 1
    index = torch.as_tensor(train_index)
    return TrainingData(data, train_index, data.x[index].to(device),
                        data.labels[index].to(device) if num_classes else None, num_classes)


@dataclass
class Run:
    """Everything a step changes: the model, its EMA, the optimizer and the counters that ``latest.pt`` keeps."""

    model: torch.nn.Module
    ema: torch.nn.Module
    opt: torch.optim.Optimizer
    loss_sum: torch.Tensor                   # float64 sum of the step losses since the last grid row
    loss_count: int = 0
    step: int = 0
    images_seen: int = 0
    elapsed: float = 0.0                     # seconds of training before this process started
    data_sha256: str | None = None           # fingerprint of the training data (neural.rundir), kept in latest.pt
    saved_step: int | None = None            # the step of the last latest.pt written (or resumed from)

    def __post_init__(self):
        # the tensors the EMA reads and writes, listed once (walking the module tree every step costs
        # more than a small network's step on CPU)
        self.ema_tensors = (list(self.ema.parameters()), list(self.model.parameters()),
                            list(self.ema.buffers()), list(self.model.buffers()))

    def state_dict(self, cfg: Config, shape, num_classes, *, full: bool) -> dict:
        """What a checkpoint holds: weights and EMA (grid checkpoints), plus what resuming needs (``full``)."""
        out = {"step": self.step, "config": cfg.to_dict(), "shape": list(shape), "num_classes": num_classes,
               "model": self.model.state_dict(), "ema": self.ema.state_dict(), "data_sha256": self.data_sha256}
        if full:
            out.update(optimizer=self.opt.state_dict(), images_seen=self.images_seen, elapsed=self.elapsed,
                       loss_sum=float(self.loss_sum), loss_count=self.loss_count)
        return out

    def load_state_dict(self, state: dict, path) -> None:
        """Load a checked ``latest.pt``; weights or optimizer state that do not fit raise
        :class:`neural.checkpoint.CheckpointError` naming ``path``."""
        ckpt.load_weights(self.model, state["model"], path)
        ckpt.load_weights(self.ema, state["ema"], path, "EMA")
        ckpt.load_optimizer(self.opt, state["optimizer"], path)
        self.step, self.images_seen, self.elapsed = state["step"], state["images_seen"], state["elapsed"]
        self.saved_step = self.step
        self.loss_sum.fill_(state["loss_sum"])
        self.loss_count = state["loss_count"]


def channels_last(model, train, device: torch.device, shape: tuple) -> None:
    """Put ``model`` in the channels-last memory format when ``train.channels_last`` asks (``'auto'``: images,
    ``shape = (C, H, W)``, on CUDA), its preconditioning told to pass its input so."""
    if train.channels_last == "on" or (train.channels_last == "auto" and device.type == "cuda" and len(shape) == 3):
        model.to(memory_format=torch.channels_last)
        model.channels_last = True


def build_run(cfg: Config, td: TrainingData, device) -> Run:
    """The network (seeded by ``train.seed``), its EMA copy and the optimizer."""
    torch.manual_seed(cfg.train.seed)
    model = model_from_config(cfg.model, td.data.shape, td.num_classes).to(device)
    channels_last(model, cfg.train, device, td.data.shape)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = OPTIMIZERS[cfg.train.optimizer](model.parameters(), cfg.train)
    return Run(model, ema, opt, torch.zeros((), dtype=torch.float64, device=device))


def loss_step_function(cfg: Config, model, ctx: Context):
    """``(loss, step_fn)``: the loss (its ``draw`` makes the batch's noise) and the module a step calls,
    wrapped in DDP over the processes and compiled when ``train.compile`` asks."""
    loss_fn = LOSSES[cfg.train.loss].from_config(model, cfg)
    step_fn = loss_fn
    if ctx.world_size > 1:
        step_fn = torch.nn.parallel.DistributedDataParallel(
            loss_fn, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if cfg.train.compile != "off":
        step_fn = torch.compile(step_fn) if cfg.train.compile == "default" else torch.compile(step_fn,
                                                                                           backend=cfg.train.compile)
    return loss_fn, step_fn


def resume(run: Run, state: dict | None, run_dir: Path, ctx: Context) -> bool:
    """Load the checked ``latest.pt`` (``state``, None for a fresh run) and drop the metric rows measured
    after it (lost work of a killed run)."""
    if state is None:
        return False
    run.load_state_dict(state, run_dir / ckpt.LATEST)
    if ctx.is_main:
        rows = ckpt.read_metrics(run_dir)
        if any(r["step"] > run.step for r in rows):
            ckpt.write_metrics(run_dir / METRICS_FILE, [r for r in rows if r["step"] <= run.step])
    return True


def train(config, run_dir, *, metrics=None, callback=None) -> Path:
    """Train the model that ``config`` describes into ``run_dir`` (resuming it if it holds a run).

    Args:
        config: a :class:`neural.config.Config`, a dict of sections, or a TOML path.
        run_dir: the run folder (created).
        metrics: the registry ``{name: metric}`` (each ``metric(snap) -> dict``, :mod:`neural.measure`) in
            which the names of ``measure.metrics`` are looked up and measured at grid checkpoints on the
            probes of ``[measure]`` (the standard registry: :data:`lab.run_metrics.METRICS`);
            ``None``: only the training loss is recorded (as with ``measure.enabled = false``).
        callback: ``callback(step, loss)`` after every step (``loss``: the step's mean loss tensor).

    Returns the run folder. Under ``torchrun`` every process calls this; process 0 writes the files.
    """
    cfg = as_config(config)
    t = cfg.train
    run_dir = Path(run_dir)
    ctx = setup(t.device)
    try:
        if t.batch_size % ctx.world_size:
            raise ValueError(f"train.batch_size: {t.batch_size} is not divisible by the {ctx.world_size} processes")
        # 1. Open the run folder (neural/rundir.py): lock it, remove orphan temporaries, check that a resumed
        #    run goes on with its own settings; a fresh start that fails leaves nothing behind.
        with cpu_threads(t.threads), open_run(run_dir, cfg, main=ctx.is_main) as folder:
            # 2. Data (a resumed run must train on the same data), network, EMA, optimizer and loss; then the
            #    state of a killed run, if any.
            device = ctx.device
            td = load_training_data(cfg, device)
            folder.check_data(td.y, td.labels)
            run = build_run(cfg, td, device)
            run.data_sha256 = folder.data_sha256
            loss_fn, step_fn = loss_step_function(cfg, run.model, ctx)
            if not resume(run, folder.state, run_dir, ctx) and ctx.is_main:
                _announce(run_dir, cfg, td, run.model, ctx)

            # 3. The measurement at grid checkpoints (process 0 only) and the checkpoint grid.
            measurement = None
            if metrics is not None and ctx.is_main and cfg.measure.enabled:
                measurement = Measurement.from_config(cfg.measure, td.data, metrics, td.train_index,
                                                      conditional=td.num_classes is not None)
            grid = set(ckpt.checkpoint_steps(t.steps, per_decade=t.checkpoints_per_decade, first=t.first_checkpoint))

            # 4. The loop: one optimizer step, then save (and measure) where the grid or save_every says.
            order = DataOrder(len(td.train_index), t.batch_size, t.seed)
            bar = progress_bar(total=t.steps, initial=run.step, desc=run_dir.name, unit="step", dynamic_ncols=True,
                               enabled=t.progress and ctx.is_main)
            run.model.train()
            start = time.perf_counter() - run.elapsed
            while run.step < t.steps:
                loss = optimizer_step(run, cfg, td, order, loss_fn, step_fn, ctx)
                value = loss.item()
                stop_if_diverged(run, value, run_dir)
                bar.update(1)
                if run.step % 10 == 0 and bar.disable is False:
                    bar.set_postfix(loss=f"{value:.4g}", refresh=False)
                if callback is not None:
                    callback(run.step, loss.detach())
                at_grid = run.step in grid
                if at_grid or run.step % t.save_every == 0 or run.step == t.steps:
                    stop_if_diverged(run, value, run_dir, weights=True)
                    run.loss_sum.fill_(mean_over_processes(float(run.loss_sum), ctx))
                    run.elapsed = time.perf_counter() - start
                    save(run, cfg, td, run_dir, ctx, at_grid=at_grid, measurement=measurement)
            bar.close()
    finally:
        teardown(ctx)
    return run_dir


class Diverged(ValueError):
    """The loss or the weights of a run became NaN or infinite."""


def stop_if_diverged(run: Run, loss: float, run_dir: Path, *, weights: bool = False) -> None:
    """Raise :class:`Diverged` naming the step when its ``loss`` (and, with ``weights``, any weight of the
    model or its EMA) is NaN or infinite; called before a save, so ``latest.pt`` keeps finite weights."""
    bad_weights = weights and not all(all_finite(t) for t in run.ema_tensors[0] + run.ema_tensors[1])
    if math.isfinite(loss) and not bad_weights:
        return
    what = f"loss {loss}" if not math.isfinite(loss) else f"NaN or infinite weights after a loss of {loss:.4g}"
    kept = ("nothing was saved" if run.saved_step is None
            else f"{run_dir / ckpt.LATEST} keeps the last finite state, step {run.saved_step}")
    raise Diverged(f"train: the run diverged at step {run.step} ({what}); {kept}; lower train.lr "
                   "(or set train.grad_clip or train.warmup_steps)")


def _announce(run_dir: Path, cfg: Config, td: TrainingData, model, ctx: Context) -> None:
    """A new run: one line on the terminal, and its ``record.json`` (seed, split, sizes, command)."""
    if cfg.train.progress:
        tqdm.write(f"{run_dir.name}: {cfg.model.preset}, {count_parameters(model):,} parameters, "
                   f"{len(td.train_index)} training points, {ctx.world_size} process(es) on {ctx.device}")
    write_record(run_dir, config=cfg.to_dict(), seed=cfg.train.seed, data=td.data.describe(),
                 train_index=td.train_index.tolist(), n_train=len(td.train_index), num_classes=td.num_classes,
                 parameters=count_parameters(model), world_size=ctx.world_size, device=str(ctx.device),
                 command=sys.argv)


def save(run: Run, cfg: Config, td: TrainingData, run_dir: Path, ctx: Context, *, at_grid: bool,
         measurement) -> None:
    """At a grid step: save the weights, measure them and append one row to ``metrics.jsonl`` (the mean
    training loss since the previous row); at every save point: rewrite ``latest.pt``. Process 0 writes."""
    shape, num_classes = td.data.shape, td.num_classes
    if at_grid:
        row = {"step": run.step, "images_seen": run.images_seen, "wall_time": run.elapsed,
               "train_loss": float(run.loss_sum) / max(run.loss_count, 1), "lr": run.opt.param_groups[0]["lr"]}
        if ctx.is_main:
            ckpt.save(ckpt.step_path(run_dir, run.step), run.state_dict(cfg, shape, num_classes, full=False))
            if measurement is not None:
                row.update(measurement(run.ema if cfg.measure.use_ema else run.model))
            ckpt.append_metrics(run_dir / METRICS_FILE, row)
        run.loss_sum.zero_()
        run.loss_count = 0
    if ctx.is_main:
        ckpt.save(run_dir / ckpt.LATEST, run.state_dict(cfg, shape, num_classes, full=True))
    run.saved_step = run.step
