"""One optimizer step of a training run, a function of the step index alone (so a resumed run is exact).

At step index ``k`` (0-based), global batch ``B``, ``W`` processes:

* data order: the global batch is positions ``[k B, (k + 1) B)`` of the stream of per-epoch random
  permutations ``perm_e`` of the training set (epoch ``e`` seeded by ``(seed, e)``); process ``r`` takes
  its contiguous slice ``[r B / W, (r + 1) B / W)``;
* randomness: the loss's noise for the whole global batch comes from a generator seeded by ``(seed, k)``
  and dropout from the global generator seeded by ``(seed, k, r)``; so the state of every random
  stream is a function of the step, and a resumed run draws exactly what an uninterrupted one draws;
* optimization: ``lr_k = lr min(1, (k + 1) / warmup_steps)``, Adam or SGD with momentum, optional
  gradient-norm clipping, then the EMA ``theta_ema <- d theta_ema + (1 - d) theta`` with
  ``d = min(ema_decay, (1 + k) / (10 + k))`` (short runs are not dominated by the initial weights).
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch


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


def ema_update(run, decay: float) -> None:
    """``theta_ema <- decay theta_ema + (1 - decay) theta`` (buffers copied)."""
    ema_params, params, ema_buffers, buffers = run.ema_tensors
    with torch.no_grad():
        for pe, pm in zip(ema_params, params):
            pe.lerp_(pm, 1 - decay)
        for be, bm in zip(ema_buffers, buffers):
            be.copy_(bm)


def seed_global(seed: int, device: torch.device) -> None:
    """Seed the global generator that dropout draws from on ``device``. On CPU only the CPU generator:
    :func:`torch.manual_seed` also queues seeds for every lazily initialised accelerator, recording a
    stack trace each time, which costs more than a small network's step."""
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def precision(train, device: torch.device):
    """The context of a step's forward pass: bf16 autocast when ``train.precision`` is ``'bf16'``, or ``'auto'``
    on CUDA; else none (float32)."""
    bf16 = train.precision == "bf16" or (train.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def optimizer_step(run, cfg, td, order: DataOrder, loss_fn, step_fn, ctx) -> torch.Tensor:
    """One step (module docstring): this process's share of global batch ``k = run.step``, the loss with noise
    drawn for the whole batch from ``(seed, k)`` and dropout from ``(seed, k, rank)``, warm-up, clipping, EMA.

    ``run``: the :class:`neural.training.Run` (model, EMA, optimizer, counters; advanced in place), ``cfg``:
    the run's config, ``td``: its :class:`neural.training.TrainingData`, ``loss_fn``: the loss (whose ``draw``
    makes the batch's noise), ``step_fn``: the module called (``loss_fn`` wrapped in DDP or compiled),
    ``ctx``: this process's :class:`neural.ddp.Context`. Returns the step's mean loss.
    """
    t, k, device = cfg.train, run.step, ctx.device
    shard = ctx.shard(t.batch_size)
    local = torch.as_tensor(order.indices(k), device=device)[shard]
    g = torch.Generator(device).manual_seed(derived_seed(t.seed, k))
    seed_global(derived_seed(t.seed, k, ctx.rank), device)
    draws = loss_fn.draw(t.batch_size, td.data.shape, g, device)
    if t.warmup_steps:
        for group in run.opt.param_groups:
            group["lr"] = t.lr * min(1.0, (k + 1) / t.warmup_steps)
    with precision(t, device):
        per_sample = step_fn(td.y[local], None if td.labels is None else td.labels[local],
                             **{name: v[shard] for name, v in draws.items()})
    loss = per_sample.float().mean()
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), t.grad_clip)
    run.opt.step()
    ema_update(run, min(t.ema_decay, (1 + k) / (10 + k)))
    run.loss_sum += loss.detach().double()
    run.loss_count += 1
    run.step += 1
    run.images_seen += t.batch_size
    return loss
