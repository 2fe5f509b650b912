"""``memgen train``, ``memgen measure``, ``memgen sweep``, ``memgen presets`` and ``memgen config``.

    memgen train RUN_DIR [-c CONFIG.toml] [section.key=value ...]
        Train into RUN_DIR, or resume it (its config.toml is used when -c is not given).
        Multi-GPU / multi-node: torchrun --nproc_per_node=G -m lab train RUN_DIR ...
    memgen presets [--shape C H W] [--classes K]
        The network presets and their parameter counts (against the papers' stated counts).
    memgen measure RUN_DIR [--steps S ...] [--out FILE] [measure.key=value ...]
        Measure the saved checkpoints of a run afterwards.
    memgen sweep SWEEP_DIR [section.key=value ...] -c CONFIG.toml --grid data.subset=64,128
                 --grid train.lr=[1e-4,4e-4] [--executor local|process|submitit] [--workers N]
                 [--cluster slurm] [--slurm key=value ...]
        One run per grid point, run one after another, in parallel processes or through submitit.
    memgen config
        Every setting (section.key) with its default and what it does.

Settings ``section.key=value`` may stand anywhere on the line, before or after the options.
"""
from __future__ import annotations

from pathlib import Path


def _train(args) -> int:
    from neural.config import load_config
    from neural.rundir import refuse_links
    from neural.training import train

    refuse_links(Path(args.run_dir))               # before its config.toml is read: a link is named as one
    path = args.config
    if path is None and (Path(args.run_dir) / "config.toml").exists():
        path = Path(args.run_dir) / "config.toml"
    train(load_config(path, args.overrides), args.run_dir, metrics=_metrics())
    return 0


def _metrics() -> dict:
    """The registry of the metrics a run's ``measure.metrics`` names (:data:`lab.run_metrics.METRICS`):
    the command line is the caller that chooses a run's metrics; neural/ itself knows none."""
    from lab.run_metrics import METRICS

    return METRICS


def _measure(args) -> int:
    from neural.ddp import pick_device
    from neural.measure import measure_run

    pick_device(args.device, key="--device")      # a missing device named as the option, before the run is read
    print(measure_run(args.run_dir, _metrics(), overrides=args.overrides, steps=args.steps, out=args.out,
                      device=args.device))
    return 0


def _presets(args) -> int:
    from neural.presets import PRESETS, STATED_PARAMETERS, preset_parameters

    shape = tuple(args.shape)
    print(f"{'preset':16s} {'parameters':>14s} {'stated':>10s}   (data shape {shape}, {args.classes or 'no'} classes)")
    for name, kw in PRESETS.items():
        if (kw["arch"] == "unet") != (len(shape) == 3):
            continue
        stated = STATED_PARAMETERS.get(name)
        count = preset_parameters(name, shape, args.classes or None)
        print(f"{name:16s} {count:14,d} {'' if stated is None else f'{stated / 1e6:.2f}M':>10s}")
    return 0


def settings_table() -> list[str]:
    """One line per setting: ``section.key``, its default (as TOML/JSON) and its help text."""
    import dataclasses
    import json

    from neural.config import Config

    rows = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            value = "true" if default is True else "false" if default is False else json.dumps(default)
            rows.append((f"{section.name}.{f.name}", value, f.metadata.get("help", "")))
    width = max(len(k) for k, _, _ in rows), max(len(v) for _, v, _ in rows)
    return [f"{k:<{width[0]}}  {v:<{width[1]}}  {h}".rstrip() for k, v, h in rows]


def _config(args) -> int:
    print("\n".join(settings_table()))
    return 0


def parse_axis(item: str) -> tuple[str, list]:
    """``'key=v1,v2'`` or ``'key=[v1, v2]'`` -> ``(key, [v1, v2])`` (each value read as a TOML value)."""
    from neural.config import parse_override, parse_value

    key, value = parse_override(item)
    if isinstance(value, list):
        return key, value
    return key, [parse_value(v.strip()) for v in str(item.split("=", 1)[1]).split(",")]


def _sweep(args) -> int:
    from neural.config import load_config, parse_override
    from lab.sweep import run_sweep

    axes = dict(parse_axis(g) for g in args.grid)
    slurm = dict(parse_override(s) for s in args.slurm)
    for path in run_sweep(load_config(args.config, args.overrides), axes, args.sweep_dir, metrics=_metrics(),
                          executor=args.executor,
                          workers=args.workers, cluster=args.cluster, slurm=slurm):
        print(path)
    return 0


def register(subparsers) -> None:
    override = dict(nargs="*", default=[], metavar="section.key=value",
                    help="settings, anywhere on the line (memgen config lists them all)")
    p = subparsers.add_parser("train", help="train a neural denoiser into a run folder (or resume it)")
    p.add_argument("run_dir", help="the run folder")
    p.add_argument("-c", "--config", help="TOML config (default: the run's own config.toml, else the defaults)")
    p.add_argument("overrides", **override)
    p.set_defaults(run=_train)

    p = subparsers.add_parser("presets", help="list the network presets and their parameter counts")
    p.add_argument("--shape", type=int, nargs="+", default=[3, 32, 32], help="data shape: C H W, or d")
    p.add_argument("--classes", type=int, default=0, help="number of classes (0: unconditional)")
    p.set_defaults(run=_presets)

    p = subparsers.add_parser("measure", help="measure the saved checkpoints of a run")
    p.add_argument("run_dir", help="the run folder")
    p.add_argument("--steps", type=int, nargs="+", help="grid steps to measure (default: all saved)")
    p.add_argument("--out", default="metrics_post.jsonl", help="output file in the run folder")
    p.add_argument("--device", default="cpu", help="device to measure on")
    p.add_argument("overrides", nargs="*", default=[], metavar="measure.key=value", help="measurement settings")
    p.set_defaults(run=_measure)

    p = subparsers.add_parser("sweep", help="train one run per point of a grid of settings")
    p.add_argument("sweep_dir", help="the sweep folder (one run folder per point inside)")
    p.add_argument("-c", "--config", help="base TOML config")
    p.add_argument("--grid", action="append", default=[], required=True, metavar="section.key=v1,v2",
                   help="one axis of the grid (repeat for more axes)")
    p.add_argument("--executor", default="local", choices=("local", "process", "submitit"))
    p.add_argument("--workers", type=int, default=2, help="parallel processes of the 'process' executor")
    p.add_argument("--cluster", default=None, help="submitit cluster: slurm, local or debug (default: auto)")
    p.add_argument("--slurm", action="append", default=[], metavar="key=value",
                   help="submitit parameter, e.g. timeout_min=600 or slurm_partition=gpu (repeatable)")
    p.add_argument("overrides", **override)
    p.set_defaults(run=_sweep)

    p = subparsers.add_parser("config", help="list every setting (section.key) with its default and meaning")
    p.set_defaults(run=_config)
