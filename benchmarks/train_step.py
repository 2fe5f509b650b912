"""Cost of one training step of ``memgen train`` against a plain PyTorch loop doing the same work.

    python -m benchmarks.train_step [--preset unet-small] [--data mondrian] [--size 8] [--batch 64] [--steps 20]
                                    [--rounds 3] [--threads 1] [--device cpu] [--compile off] [--channels-last off]
                                    [--precision fp32] [--out bench-out/train_step.json]

Both sides train the same preconditioned network (``neural.presets.model_from_config``) on the same
images (``--data``: Mondrian of side ``--size``, or the 8x8 ``digits``, 64 dimensions) with the EDM
loss (log-normal sigma, weight ``(sigma^2 + sigma_d^2) / (sigma sigma_d)^2``), Adam and an EMA of the
weights. memgen's side is :func:`neural.train` itself (measurement off, its step times taken from its
per-step callback); the plain side is the loop written out below. They run alternately for
``--rounds`` rounds; each round's images/s is the median over the steps after the first two
(warm-up), and the reported figure is the median over rounds. ``overhead`` is
``plain images/s / memgen images/s - 1``; ``cpu_overhead`` the same by the CPU time of the process
(per step, less sensitive to other jobs on a shared machine than the wall clock). Both sides run on ``--threads`` CPU threads (memgen's
``train.threads``, 1 by default; the plain loop under :func:`memgen.threads.cpu_threads`).
``first_step_s``: seconds from the start of a round to its first step (memgen's includes opening the
run folder and loading the data; with ``--compile`` it is mostly the compilation). The load average
is recorded, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from contextlib import nullcontext

import torch

from memgen.threads import cpu_threads

WARMUP = 2


def data_params(args) -> dict:
    return {"n": max(args.batch, 256), "size": args.size} if args.data == "mondrian" else {}


def config(args, steps: int) -> dict:
    return {
        "data": {"name": args.data, "params": data_params(args)},
        "model": {"preset": args.preset},
        "train": {"steps": steps, "batch_size": args.batch, "device": args.device, "compile": args.compile,
                  "channels_last": args.channels_last, "precision": args.precision, "progress": False,
                  "threads": args.threads,
                  "save_every": 10 ** 9, "checkpoints_per_decade": 1, "first_checkpoint": steps, "lr": 1e-4},
        "measure": {"enabled": False},
    }


def clock() -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process)."""
    return time.perf_counter(), time.process_time()


def rate(args, start: tuple, stamps: list) -> tuple[float, float, float]:
    """``(images/s, images per CPU second, first_step_s)``: the median per-step rates after the warm-up
    steps (by the wall clock and by the process's CPU time), and the wall time to the first step."""
    def median_rate(k):
        gaps = [b[k] - a[k] for a, b in zip(stamps[WARMUP:], stamps[WARMUP + 1:])]
        return args.batch / max(statistics.median(gaps), 1e-9)
    return median_rate(0), median_rate(1), stamps[0][0] - start[0]


def memgen_round(args) -> tuple[float, float, float]:
    """Images/s of :func:`neural.train` over ``args.steps`` steps, and its time to the first step."""
    from neural import train
    stamps = []
    start = clock()
    with tempfile.TemporaryDirectory() as tmp:
        train(config(args, args.steps), os.path.join(tmp, "run"), metrics=False,
              callback=lambda step, loss: stamps.append(clock()))
    return rate(args, start, stamps)


def plain_round(args) -> tuple[float, float, float]:
    """Images/s of the same training written as a plain PyTorch loop, and its time to the first step."""
    import memgen.data
    from neural.config import as_config
    from neural.presets import model_from_config
    cfg = as_config(config(args, args.steps))
    device = torch.device(args.device)
    start = clock()
    data = memgen.data.load(args.data, **data_params(args))
    y_all = data.x[torch.as_tensor(data.split.train)].to(device)
    torch.manual_seed(0)
    model = model_from_config(cfg.model, data.shape).to(device)
    if args.channels_last == "on":
        model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sd = cfg.model.sigma_data
    g = torch.Generator(device).manual_seed(0)

    def loss_fn(y, sigma, noise):
        weight = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
        den = model.denoise(y + sigma.view(-1, *[1] * (y.dim() - 1)) * noise, sigma, None)
        return (weight * (den - y).pow(2).flatten(1).mean(1)).mean()

    step = torch.compile(loss_fn) if args.compile != "off" else loss_fn
    bf16 = args.precision == "bf16"
    stamps = []
    for i in range(args.steps):
        idx = torch.randint(len(y_all), (args.batch,), generator=g, device=device)
        sigma = (-1.2 + 1.2 * torch.randn(args.batch, generator=g, device=device)).exp()
        noise = torch.randn((args.batch, *data.shape), generator=g, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = step(y_all[idx], sigma, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + i) / (10 + i))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(clock())
    return rate(args, start, stamps)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="unet-small")
    p.add_argument("--data", choices=["mondrian", "digits"], default="mondrian")
    p.add_argument("--size", type=int, default=8, help="Mondrian image side")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="CPU threads of both sides (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", default="off")
    p.add_argument("--channels-last", choices=["on", "off"], default="off")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--out", default="bench-out/train_step.json")
    args = p.parse_args(argv)
    if args.steps < WARMUP + 3 or args.rounds < 1:
        p.error(f"--steps must be >= {WARMUP + 3} and --rounds >= 1")
    load = os.getloadavg()
    rates, cpu_rates, first = ({"memgen": [], "plain": []} for _ in range(3))
    cuda = torch.device(args.device).type == "cuda"
    peak = {}
    for _ in range(args.rounds):
        for name, fn in (("memgen", memgen_round), ("plain", plain_round)):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with cpu_threads(args.threads):
                r, c, f = fn(args)
            rates[name].append(r)
            cpu_rates[name].append(c)
            first[name].append(f)
            if cuda:
                peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated() / 2 ** 20)
    with cpu_threads(args.threads):
        threads = torch.get_num_threads()
    res = {"args": vars(args), "threads": threads, "load_average_before": load,
           "load_average_after": os.getloadavg(),
           "memgen_images_per_s": statistics.median(rates["memgen"]), "plain_images_per_s": statistics.median(rates["plain"]),
           "rounds": rates, "cpu_rounds": cpu_rates, "first_step_s": first, "peak_gpu_mib": peak or None}
    res["overhead"] = res["plain_images_per_s"] / res["memgen_images_per_s"] - 1
    res["cpu_overhead"] = statistics.median(cpu_rates["plain"]) / statistics.median(cpu_rates["memgen"]) - 1
    what = f"{args.size}x{args.size} Mondrian" if args.data == "mondrian" else "8x8 digits"
    print(f"{args.preset} on {what}, batch {args.batch}, {args.device}, compile {args.compile},"
          f" channels_last {args.channels_last}, {args.precision}, {res['threads']} threads, load {load[0]:.1f}:"
          f" memgen {res['memgen_images_per_s']:.1f} images/s, plain loop {res['plain_images_per_s']:.1f} images/s,"
          f" overhead {100 * res['overhead']:+.1f}% (target <= +5%); by CPU time {100 * res['cpu_overhead']:+.1f}%;"
          f" rounds {rates}; CPU rounds {cpu_rates}; first step (s) {first}")
    from memgen.run_files import atomic_write_json, versions
    atomic_write_json(args.out, {**res, "versions": versions()})
    return res


if __name__ == "__main__":
    main()
