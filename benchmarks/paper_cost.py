"""Floating-point operations of the training runs of ``memgen report --scale paper``, and the floor on GPU time.

    python -m benchmarks.paper_cost [--scale paper] [--seeds 3] [--count-batch 2] [--peak-tflops 989]
                                    [--measure cuda|cpu [--steps 10]] [--out bench-out/paper_cost.json]

The runs are the report's own plan (:func:`lab.claims.report.planned` over every claim, each run once), each
with the config it trains with (:func:`lab.claims.networks.run_config`). One training step is the run's loss
(``neural.losses``) forward and backward at its batch ``B``. Its FLOPs ``F(B)`` are counted by
``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products, convolutions and attention
(the work of the tensor cores); elementwise operations, normalizations, the optimizer and the EMA are not
counted. They are counted at ``b = --count-batch`` and ``2b``; the count must double (``F(2b) = 2 F(b)``),
and ``F(B) = F(b) B / b``. The runs are grouped by network (preset, its parameters, preconditioning, loss,
data shape, classes) and batch: ``total = steps x F(B)``.

The floor on GPU time is ``sum(total) / (peak x 10^12)`` seconds: every step at the GPU's dense peak rate
(``--peak-tflops``), no memory traffic, no data loading, no measurement at the checkpoints (sampling is
left out of the count). Real runs take longer.

``--measure DEVICE``: the time itself, estimated from measured steps per second. For each network and batch
of the table, ``--steps`` training steps (the loss forward and backward with the precision and memory format
training uses on that device, :func:`neural.step.precision` and :func:`neural.training.channels_last`, then the
optimizer's update) are timed after two untimed ones, and the median step time gives ``steps/s``; the row's
hours are ``steps / (steps/s) / 3600`` on one such device, and the total is their sum (divide by the devices a
job array gets). On ``cpu`` (one thread) a row whose step is predicted (from one step at the count batch) to
take over :data:`CPU_LIMIT_S` is left out and the total marked incomplete.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from lab.claims.base import SCALES
from memgen.data.cifar import CLASSES as CIFAR10_CLASSES

H100_BF16_DENSE_TFLOPS = 989.0
"""NVIDIA's figure for H100 SXM and H200 SXM: 989 TFLOP/s of dense bf16 tensor-core work (1,979 with sparsity)."""

CPU_LIMIT_S = 60.0
"""``--measure cpu`` times a row only when its timed steps are predicted to take under this many seconds."""

LOCAL_SHAPES = {"cifar10": ((3, 32, 32), len(CIFAR10_CLASSES))}
"""``(event shape, classes)`` of the data sets read from the user's own copy (``lab.claims.report.LOCAL_COPIES``),
which need not be here."""


def count_flops(fn) -> int:
    """The FLOPs ``FlopCounterMode`` counts while ``fn()`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def data_of(cfg, cache: dict) -> tuple[tuple, int | None]:
    """``(event shape, classes)`` of a run's data (classes None unless ``model.class_conditional``), by
    :func:`neural.training.load_training_data`, once per data config (``cache``)."""
    from neural.training import load_training_data

    key = (repr(cfg.data), cfg.model.class_conditional)
    if key not in cache:
        if cfg.data.name in LOCAL_SHAPES:
            shape, classes = LOCAL_SHAPES[cfg.data.name]
            cache[key] = (shape, classes if cfg.model.class_conditional else None)
        else:
            td = load_training_data(cfg, torch.device("cpu"))
            cache[key] = (tuple(td.data.shape), td.num_classes)
    return cache[key]


def network_key(cfg, shape: tuple, classes: int | None) -> tuple:
    """What sets a step's FLOPs besides the batch: preset, its parameters, preconditioning, loss, data shape
    and classes."""
    params = ",".join(f"{k}={v}" for k, v in sorted(cfg.model.params.items()))
    return cfg.model.preset, params, cfg.model.precond, cfg.train.loss, cfg.data.name, shape, classes


def loss_step(cfg, shape: tuple, classes: int | None, device: str = "cpu", update: bool = False):
    """``step(batch)``: one forward and backward of the run's loss on a batch of random data (the network
    seeded by 0, in training mode, on ``device`` with the precision and memory format training uses there),
    then, with ``update``, the optimizer's step."""
    from neural.losses import LOSSES
    from neural.optim import OPTIMIZERS
    from neural.presets import model_from_config
    from neural.step import precision
    from neural.training import channels_last

    device = torch.device(device)
    torch.manual_seed(0)
    model = model_from_config(cfg.model, shape, classes).to(device)
    channels_last(model, cfg.train, device, shape)
    loss_fn = LOSSES[cfg.train.loss].from_config(model, cfg)
    opt = OPTIMIZERS[cfg.train.optimizer](model.parameters(), cfg.train) if update else None

    def step(batch: int) -> None:
        g = torch.Generator(device).manual_seed(batch)
        y = torch.randn((batch, *shape), generator=g, device=device)
        labels = torch.randint(classes, (batch,), generator=g, device=device) if classes else None
        with precision(cfg.train, device):
            loss = loss_fn(y, labels, **loss_fn.draw(batch, shape, g, device)).float().mean()
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
    return step


def flops_per_sample(step, b: int) -> float:
    """``F(b) / b`` of a step, after checking that the count doubles with the batch (``F(2b) = 2 F(b)``)."""
    at_b, at_2b = count_flops(lambda: step(b)), count_flops(lambda: step(2 * b))
    if at_2b != 2 * at_b:
        raise RuntimeError(f"count-batch: FLOPs are not linear in the batch ({at_b} at {b}, {at_2b} at {2 * b})")
    return at_b / b


def planned_configs(scale: str, seeds: list) -> list:
    """The config of every run ``memgen report --scale SCALE`` trains, each run once."""
    from lab.claims.networks import run_config
    from lab.claims.registry import CLAIMS
    from lab.claims.report import planned

    return [run_config(ov, sd) for ov, sd in planned(list(CLAIMS.values()), Path("runs"), scale, seeds).values()]


def cost_table(scale: str, seeds: list, count_batch: int = 2, progress: bool = False) -> tuple[list, dict]:
    """``(rows, networks)``: one row per (network, batch) of the planned runs, with ``runs``, ``steps``,
    ``flops_per_step`` (``F(B)``) and ``flops`` (``steps x F(B)``); ``networks``: ``(config, shape, classes)``
    of one run of each network."""
    groups, shapes, networks, per_sample = defaultdict(list), {}, {}, {}
    for cfg in planned_configs(scale, seeds):
        shape, classes = data_of(cfg, shapes)
        key = network_key(cfg, shape, classes)
        if key not in networks:
            networks[key] = cfg, shape, classes
            per_sample[key] = flops_per_sample(loss_step(cfg, shape, classes), count_batch)
            if progress:
                print(f"counted {key}: {per_sample[key] / 1e9:.3f} GFLOPs per sample", flush=True)
        groups[key, cfg.train.batch_size].append(cfg.train.steps)
    rows = []
    for (key, batch), run_steps in groups.items():
        preset, params, precond, loss, data, shape, classes = key
        per_step = per_sample[key] * batch
        rows.append({"preset": preset, "params": params, "precond": precond, "loss": loss, "data": data,
                     "shape": list(shape), "classes": classes, "batch": batch, "runs": len(run_steps),
                     "steps": sum(run_steps), "flops_per_step": per_step, "flops": per_step * sum(run_steps),
                     "network": key})
    return sorted(rows, key=lambda r: -r["flops"]), networks


def step_seconds(step, batch: int, device: str, steps: int) -> float:
    """The median wall seconds of ``step(batch)`` over ``steps`` calls after two untimed ones (the device
    synchronized around each)."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(2):
        step(batch)
    times = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        step(batch)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(rows: list, networks: dict, device: str, steps: int, count_batch: int) -> None:
    """Add ``steps_per_s`` and ``hours`` (on one ``device``) to every row (module doc); on the CPU, one thread,
    and rows predicted over :data:`CPU_LIMIT_S` a step are left out (``steps_per_s`` None)."""
    from memgen.threads import cpu_threads

    with cpu_threads(1 if device == "cpu" else 0):
        for key, network in networks.items():
            step = loss_step(*network, device=device, update=True)
            at_b = step_seconds(step, count_batch, device, 1) if device == "cpu" else 0.0
            for r in (r for r in rows if r["network"] == key):
                r["steps_per_s"] = r["hours"] = None
                if at_b * r["batch"] / count_batch * (steps + 2) > CPU_LIMIT_S:
                    continue
                r["steps_per_s"] = 1 / step_seconds(step, r["batch"], device, steps)
                r["hours"] = r["steps"] / r["steps_per_s"] / 3600


def name(r: dict) -> str:
    """The network of a row: its preset and parameters."""
    return r["preset"] + (f" ({r['params']})" if r["params"] else "")


def data_text(r: dict) -> str:
    """The data of a row: its name, event shape and classes."""
    return f"{r['data']} {'x'.join(map(str, r['shape']))}" + (f", {r['classes']} classes" if r["classes"] else "")


def num(x: float) -> str:
    """``x`` in whole numbers with thousands separators from 100 up, else to 3 significant digits."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def floor_hours(rows: list, peak_tflops: float) -> float:
    """``sum(flops) / (peak x 10^12) / 3600``: the GPU-hours of every counted FLOP at the peak rate."""
    return sum(r["flops"] for r in rows) / (peak_tflops * 1e12) / 3600


def report(rows: list, peak_tflops: float, device: str | None = None) -> str:
    """The table, the totals, the floor on GPU time and, when measured on ``device``, the estimated time, as text."""
    timed = device is not None
    lines = ["| preset | data | batch | runs | steps | GFLOPs/step | total PFLOPs |" + (" steps/s | hours |" if timed else ""),
             "|---|---|---|---|---|---|---|" + ("---|---|" if timed else "")]
    for r in rows:
        line = (f"| {name(r)} | {data_text(r)} | {r['batch']} | {r['runs']} | {r['steps']:,} |"
                f" {num(r['flops_per_step'] / 1e9)} | {num(r['flops'] / 1e15)} |")
        if timed:
            line += (f" {num(r['steps_per_s'])} | {num(r['hours'])} |" if r["steps_per_s"] else " not timed | |")
        lines.append(line)
    total, floor_h = sum(r["flops"] for r in rows), floor_hours(rows, peak_tflops)
    lines += ["", f"total: {sum(r['runs'] for r in rows)} runs, {sum(r['steps'] for r in rows):,} steps, "
              f"{num(total / 1e15)} PFLOPs (matmul, convolution and attention, forward and backward)",
              f"floor: {floor_h:,.1f} GPU-hours at {peak_tflops:g} TFLOP/s; a FLOOR, at 100% of that peak with no "
              "other work (elementwise, optimizer, data, measurement): real runs take longer"]
    if timed:
        hours = [r["hours"] for r in rows if r["hours"] is not None]
        missing = len(rows) - len(hours)
        lines.append(f"measured on {device}: {sum(hours):,.1f} hours of training on one such device"
                     + (f" (INCOMPLETE: {missing} of {len(rows)} rows not timed)" if missing else "")
                     + "; checkpoint measurement and sampling not included")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=SCALES, default="paper")
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration (the report's default: 3)")
    p.add_argument("--count-batch", type=int, default=2, help="batch b the FLOPs are counted at (and at 2b)")
    p.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS,
                   help="the GPU's peak dense rate in TFLOP/s (default 989: NVIDIA's figure for H100/H200 SXM, "
                        "bf16 dense tensor-core, the precision training uses on CUDA)")
    p.add_argument("--measure", default=None, metavar="DEVICE",
                   help="also time training steps of every row on DEVICE (cuda, cuda:N or cpu) and estimate the "
                        "hours (module doc)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per row with --measure")
    p.add_argument("--out", default="bench-out/paper_cost.json")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.count_batch < 1 or args.steps < 1 or args.peak_tflops <= 0:
        p.error("--seeds, --count-batch and --steps must be >= 1 and --peak-tflops > 0")
    if args.measure is not None:
        from neural.ddp import pick_device
        try:
            args.measure = str(pick_device(args.measure, key="--measure"))
        except ValueError as e:
            p.error(str(e))
    rows, networks = cost_table(args.scale, list(range(args.seeds)), args.count_batch, progress=True)
    if args.measure is not None:
        measure(rows, networks, args.measure, args.steps, args.count_batch)
    text = report(rows, args.peak_tflops, args.measure)
    print(text)
    res = {"args": vars(args), "rows": [{k: v for k, v in r.items() if k != "network"} for r in rows],
           "total_flops": sum(r["flops"] for r in rows), "total_steps": sum(r["steps"] for r in rows),
           "floor_gpu_hours": floor_hours(rows, args.peak_tflops), "report": text}
    from memgen.run_files import atomic_write_json, versions
    atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
