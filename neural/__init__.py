"""Neural denoisers: networks, preconditioning into the Denoiser contract, training one run, measurement.

* networks: :class:`UNet` (DDPM / IDDPM / DDPM++ family), :class:`ResidualMLP`, named :data:`PRESETS`;
* preconditioning: :class:`EDMPrecond`, :class:`VPPrecond` (any trained network is a ``memgen.Denoiser``);
* foreign networks (diffusers, EDM, k-diffusion, plain functions): :mod:`neural.external`;
* training: :func:`train` (a resumable run folder), :func:`load_config`, :class:`Config`;
  :func:`load_denoiser` and :func:`read_metrics` read a run back;
* measurement: :class:`Measurement` of metrics ``metric(snap) -> dict`` (:class:`Snapshot`) that the caller
  passes (``neural`` knows no metric), :func:`measure_run`.

Where many runs train (sweeps, the claims report; local processes or a submitit job array) is the
application's choice: :mod:`lab.executors` and :mod:`lab.sweep`.

One module, one job:

====================  ===================================================================================
``unet``              the U-Net (DDPM / IDDPM / DDPM++ family), built from the blocks of ``layers``
``mlp``               a residual MLP for low-dimensional data
``presets``           named networks (the papers' sizes) and the denoiser a ``[model]`` section describes
``precond``           EDM and VP preconditioning: a raw network becomes a ``memgen.Denoiser``
``external``          adapters: a network trained elsewhere (any prediction type, any VP schedule) as a denoiser
``losses``            the EDM and DDPM objectives (registry ``LOSSES``)
``optim``             the optimizers (registry ``OPTIMIZERS``)
``step``              one optimizer step: data order, per-step randomness, warm-up, clipping, EMA
``config``            the run configuration: four sections, each field with its help and rule, TOML in and out
``training``          ``train``: a resumable run folder, in named steps (open, build, resume, loop, save)
``rundir``            the run folder around a run: lock, no links, resumed only as what it was
``checkpoint``        the log-spaced checkpoint grid, saving and loading a run's weights and metric rows
``measure``           measurement at a checkpoint: fixed probes and samples, metrics that the caller passes
``ddp``               data parallelism across processes (torchrun)
``diffusers_folder``  a local diffusers folder read as a denoiser, its files checked first
====================  ===================================================================================

Names are imported on first use, so that ``memgen --help`` (which imports the command modules) stays fast.
"""
import importlib

_EXPORTS = {
    "unet": ["UNet"],
    "mlp": ["ResidualMLP"],
    "presets": ["PRESETS", "STATED_PARAMETERS", "build_network", "count_parameters", "preset_parameters",
                "model_from_config"],
    "precond": ["EDMPrecond", "VPPrecond"],
    "external": ["VPDiscreteDenoiser", "PreconditionedDenoiser", "FunctionDenoiser", "edm_denoiser", "from_diffusers"],
    "diffusers_folder": ["load_diffusers", "unet_parameters"],
    "losses": ["EDMLoss", "DDPMLoss"],
    "config": ["Config", "load_config", "apply_overrides", "with_values", "dump_toml"],
    "training": ["train"],
    "checkpoint": ["checkpoint_steps", "list_checkpoints", "load_denoiser", "read_metrics"],
    "measure": ["Measurement", "Probes", "Snapshot", "make_probes", "measure_run", "uses_samples"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'neural' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
