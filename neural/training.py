"""Training a denoiser into a run folder, resumable exactly, measured at every grid checkpoint.

One step at step index ``k`` (0-based):

* data order: the global batch is positions ``[k B, (k + 1) B)`` of the stream of per-epoch random
  permutations ``perm_e`` of the training set (epoch ``e`` seeded by ``(seed, e)``);
* randomness: the loss's noise for the global batch comes from a generator seeded by ``(seed, k)``
  and dropout from the global generator seeded by ``(seed, k, rank)``; so the state of every random
  stream is a function of the step, and a resumed run draws exactly what an uninterrupted one draws;
* optimization: ``lr_k = lr min(1, (k + 1) / warmup_steps)``, Adam or SGD with momentum, optional
  gradient-norm clipping, then the EMA ``theta_ema <- d theta_ema + (1 - d) theta`` with
  ``d = min(ema_decay, (1 + k) / (10 + k))`` (short runs are not dominated by the initial weights).

At each step of the log-spaced grid (:func:`neural.checkpoint.checkpoint_steps`) the weights are saved,
the model is measured (:class:`neural.measure.Measurement`) and one row is appended to
``metrics.jsonl``; ``latest.pt`` (weights, EMA, optimizer, step, loss accumulators) is rewritten there
and every ``save_every`` steps. A run folder that holds ``latest.pt`` resumes from it; rows measured
after it (lost work of a killed run) are dropped and measured again.
"""
from __future__ import annotations

import copy
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import memgen.data
from memgen.progress import progress_bar
from memgen.runs import METRICS_FILE, write_record
from memgen.threads import cpu_threads

from . import checkpoint as ckpt
from .config import as_config
from .ddp import mean_over_processes, setup, teardown
from .losses import DDPMLoss, EDMLoss
from .measure import Measurement
from .presets import count_parameters, model_from_config
from .rundir import open_run


def derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers by :class:`numpy.random.SeedSequence` (independent streams)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class DataOrder:
    """Global batch ``k``: positions ``[k B, (k + 1) B)`` of the concatenated epoch permutations."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.batch, self.seed = int(n), int(batch), int(seed)
        self._cache: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._cache[epoch]

    def indices(self, step: int) -> np.ndarray:
        pos, end, parts = step * self.batch, (step + 1) * self.batch, []
        while pos < end:
            epoch, off = divmod(pos, self.n)
            take = min(self.n - off, end - pos)
            parts.append(self.permutation(epoch)[off:off + take])
            pos += take
        return np.concatenate(parts)


def _optimizer(t, params):
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def _ema_update(ema, model, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)


def _num_classes(data) -> int:
    if data.labels is None:
        raise ValueError(f"model.class_conditional: the data set {data.name!r} has no labels")
    return len(data.classes) if data.classes else int(data.labels.max()) + 1


def train(config, run_dir, *, metrics=None, callback=None) -> Path:
    """Train the model that ``config`` describes into ``run_dir`` (resuming it if it holds a run).

    Args:
        config: a :class:`neural.config.Config`, a dict of sections, or a TOML path.
        run_dir: the run folder (created).
        metrics: the measurement at grid checkpoints: ``None`` builds it from ``config.measure``
            (:meth:`Measurement.from_config`), ``False`` measures nothing, or any callable
            ``metrics(model) -> dict`` (e.g. a :class:`Measurement` with your own metric callables).
        callback: ``callback(step, loss)`` after every step (``loss``: the step's mean loss tensor).

    Returns the run folder. Under ``torchrun`` every process calls this; process 0 writes the files.
    """
    cfg = as_config(config)
    t = cfg.train
    run_dir = Path(run_dir)
    ctx = setup(t.device)
    try:
        # run folder (neural/rundir.py): lock, orphan cleanup, resume checks, roll-back of a failed fresh start
        with cpu_threads(t.threads), open_run(run_dir, cfg, main=ctx.is_main) as run:
            if t.batch_size % ctx.world_size:
                raise ValueError(f"train.batch_size: {t.batch_size} is not divisible by the {ctx.world_size} processes")
            data = memgen.data.load(cfg.data.name, **cfg.data.params)
            train_index = np.asarray(data.split.train)
            if cfg.data.subset:
                if cfg.data.subset > len(train_index):
                    raise ValueError(f"data.subset: {cfg.data.subset} exceeds the {len(train_index)} training points")
                train_index = train_index[np.random.default_rng(cfg.data.subset_seed).permutation(len(train_index))]
                train_index = train_index[:cfg.data.subset]
            num_classes = _num_classes(data) if cfg.model.class_conditional else None
            device = ctx.device
            y_all = data.x[torch.as_tensor(train_index)].to(device)
            labels_all = data.labels[torch.as_tensor(train_index)].to(device) if num_classes else None
            run.check_data(y_all, labels_all)  # run folder: refuses to resume on other training data

            torch.manual_seed(t.seed)
            model = model_from_config(cfg.model, data.shape, num_classes).to(device)
            images = len(data.shape) == 3
            if t.channels_last == "on" or (t.channels_last == "auto" and device.type == "cuda" and images):
                model.to(memory_format=torch.channels_last)
                model.channels_last = True
            ema = copy.deepcopy(model).eval().requires_grad_(False)
            opt = _optimizer(t, model.parameters())
            loss_fn = (DDPMLoss(model) if t.loss == "ddpm"
                       else EDMLoss(model, p_mean=t.p_mean, p_std=t.p_std, sigma_data=cfg.model.sigma_data))
            step_fn = loss_fn
            if ctx.world_size > 1:
                step_fn = torch.nn.parallel.DistributedDataParallel(
                    loss_fn, device_ids=[device.index] if device.type == "cuda" else None)
            if t.compile != "off":
                step_fn = (torch.compile(step_fn) if t.compile == "default"
                           else torch.compile(step_fn, backend=t.compile))
            bf16 = t.precision == "bf16" or (t.precision == "auto" and device.type == "cuda")
            if device.type == "cuda":
                torch.backends.cudnn.benchmark = True

            step, images_seen, elapsed = 0, 0, 0.0
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            loss_count = 0
            latest = run_dir / ckpt.LATEST
            if run.state is not None:  # run folder: the checked latest.pt
                state = run.state
                model.load_state_dict(state["model"])
                ema.load_state_dict(state["ema"])
                opt.load_state_dict(state["optimizer"])
                step, images_seen, elapsed = state["step"], state["images_seen"], state["elapsed"]
                loss_sum.fill_(state["loss_sum"])
                loss_count = state["loss_count"]
                if ctx.is_main:
                    rows = ckpt.read_metrics(run_dir)
                    if any(r["step"] > step for r in rows):
                        ckpt.write_metrics(run_dir / METRICS_FILE, [r for r in rows if r["step"] <= step])
            elif ctx.is_main:
                if t.progress:
                    tqdm.write(f"{run_dir.name}: {cfg.model.preset}, {count_parameters(model):,} parameters, "
                               f"{len(train_index)} training points, {ctx.world_size} process(es) on {device}")
                write_record(run_dir, config=cfg.to_dict(), seed=t.seed, data=data.describe(),
                             train_index=train_index.tolist(), n_train=len(train_index), num_classes=num_classes,
                             parameters=count_parameters(model), world_size=ctx.world_size, device=str(device),
                             command=sys.argv)

            if metrics is None and ctx.is_main and cfg.measure.enabled:
                metrics = Measurement.from_config(cfg.measure, data, train_index, conditional=num_classes is not None)
            grid = set(ckpt.checkpoint_steps(t.steps, per_decade=t.checkpoints_per_decade, first=t.first_checkpoint))
            order = DataOrder(len(train_index), t.batch_size, t.seed)
            shard = ctx.shard(t.batch_size)

            def state_dict(full: bool) -> dict:
                out = {"step": step, "config": cfg.to_dict(), "shape": list(data.shape), "num_classes": num_classes,
                       "model": model.state_dict(), "ema": ema.state_dict(), "data_sha256": run.data_sha256}
                if full:
                    out.update(optimizer=opt.state_dict(), images_seen=images_seen, elapsed=elapsed,
                               loss_sum=float(loss_sum), loss_count=loss_count)
                return out

            bar = progress_bar(total=t.steps, initial=step, desc=run_dir.name, unit="step", dynamic_ncols=True,
                               enabled=t.progress and ctx.is_main)
            model.train()
            start = time.perf_counter() - elapsed
            while step < t.steps:
                idx = torch.as_tensor(order.indices(step), device=device)
                g = torch.Generator(device).manual_seed(derived_seed(t.seed, step))
                torch.manual_seed(derived_seed(t.seed, step, ctx.rank))
                draws = loss_fn.draw(t.batch_size, data.shape, g, device)
                local = idx[shard]
                if t.warmup_steps:
                    for group in opt.param_groups:
                        group["lr"] = t.lr * min(1.0, (step + 1) / t.warmup_steps)
                with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
                    per_sample = step_fn(y_all[local], None if labels_all is None else labels_all[local],
                                         **{k: v[shard] for k, v in draws.items()})
                loss = per_sample.float().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if t.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                opt.step()
                _ema_update(ema, model, min(t.ema_decay, (1 + step) / (10 + step)))
                loss_sum += loss.detach().double()
                loss_count += 1
                step += 1
                images_seen += t.batch_size
                bar.update(1)
                if step % 10 == 0 and bar.disable is False:
                    bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)
                if callback is not None:
                    callback(step, loss.detach())
                at_grid = step in grid
                if at_grid or step % t.save_every == 0 or step == t.steps:
                    loss_sum.fill_(mean_over_processes(float(loss_sum), ctx))
                    elapsed = time.perf_counter() - start
                if at_grid:
                    row = {"step": step, "images_seen": images_seen, "wall_time": elapsed,
                           "train_loss": float(loss_sum) / max(loss_count, 1), "lr": opt.param_groups[0]["lr"]}
                    if ctx.is_main:
                        ckpt.save(ckpt.step_path(run_dir, step), state_dict(full=False))
                        if metrics:
                            row.update(metrics(ema if cfg.measure.use_ema else model))
                        ckpt.append_metrics(run_dir / METRICS_FILE, row)
                    loss_sum.zero_()
                    loss_count = 0
                if (at_grid or step % t.save_every == 0 or step == t.steps) and ctx.is_main:
                    ckpt.save(latest, state_dict(full=True))
            bar.close()
    finally:
        teardown(ctx)
    return run_dir
