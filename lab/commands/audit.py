"""``memgen audit MODEL [--train DATA] [--val DATA] [--out DIR]``: is this model memorizing, and where?

MODEL is a memgen run folder, a local diffusers folder or ``module:factory``; DATA a :mod:`memgen.data`
spec (:mod:`lab.audit.inputs`). The audit (:func:`lab.audit.report.audit`) writes a report
(markdown, figures, CSV) into DIR and prints its summary. docs/own_model.md is the guide.
"""
from __future__ import annotations

import argparse

from lab.audit import AuditSettings, audit, load_data, load_model


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _settings(args) -> AuditSettings:
    """The settings given on the command line, each checked first under its option's name (``--probes``)."""
    import dataclasses

    from lab.audit.report import check_setting

    names = {f.name for f in dataclasses.fields(AuditSettings)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return AuditSettings(**{k: check_setting(k, v, _option(k)) for k, v in given.items()})


def _run(args) -> int:
    from pathlib import Path

    from memgen.checks import integer
    from memgen.threads import cpu_threads

    from lab.audit.inputs import with_val

    settings = _settings(args)
    integer(args.threads, "--threads", 0)
    if args.max_parameters is not None:
        integer(args.max_parameters, "--max-parameters")
    with cpu_threads(args.threads):
        model, own, kind = load_model(args.model, device=args.device, scheduler=args.scheduler,
                                      max_parameters=args.max_parameters)
        if args.train is not None:
            data = load_data(args.train, args.val)
        elif own is None:
            raise SystemExit("memgen audit: --train DATA is required unless MODEL is a memgen run folder")
        else:
            data = own if args.val is None else with_val(own, args.val)
        name = args.model if kind == "factory" else Path(args.model).resolve().name
        summary = audit(model, data, args.out, settings=settings, model_name=name)
    print(f"audit of {name} ({kind}) written to {args.out}/report.md")
    for key, value in summary.items():
        print(f"  {key:45s} {value:.4g}" if isinstance(value, float) else f"  {key:45s} {value}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("audit", help="is this model memorizing, and where? (a report: markdown, figures, CSV)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a memgen run folder, a local diffusers folder, or module:factory")
    p.add_argument("--train", help="training data: NAME[:key=value,...], a .npy/.npz file or an image folder "
                                   "(default for a run folder: the run's own)")
    p.add_argument("--val", help="validation data (default: the validation part of the --train data set)")
    p.add_argument("--out", default="memgen-audit", help="output folder (default: memgen-audit)")
    p.add_argument("--device", default="cpu", help="device of the model (cuda for a GPU)")
    p.add_argument("--scheduler", help="scheduler folder (with scheduler_config.json) of a diffusers model folder "
                                       "that has none")
    p.add_argument("--max-parameters", dest="max_parameters", type=int,
                   help="largest estimated parameter count of a diffusers model to build (default 2e9)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: torch's setting)")
    d = AuditSettings()
    p.add_argument("--probes", type=int, help=f"training and validation probes for the errors ({d.probes})")
    p.add_argument("--sigmas", type=int, help=f"noise levels of the per-sigma measures ({d.sigmas})")
    p.add_argument("--samples", type=int, help=f"samples drawn ({d.samples})")
    p.add_argument("--trajectories", type=int, help=f"of which trajectories measured ({d.trajectories})")
    p.add_argument("--steps", type=int, help=f"Heun steps on the EDM grid ({d.steps})")
    p.add_argument("--features", help="feature space of the replicate search and fidelity: pixels, inception_v3, "
                                      "resnet50 (with --feature-weights) or module:callable (pixels)")
    p.add_argument("--feature-weights", dest="feature_weights", help="local weights file of the feature network")
    p.add_argument("--fid-weights", dest="fid_weights", help="local FID Inception weights (adds the standard FID)")
    p.add_argument("--seed", type=int, help=f"seed of every draw ({d.seed})")
    p.set_defaults(run=_run)
