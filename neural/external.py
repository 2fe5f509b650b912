"""Adapters: a network trained elsewhere becomes a :class:`memgen.Denoiser` ``D(x, sigma)``.

One small class per family of foreign networks, each in the canonical form ``x = y + sigma eps``
(docs/design.md, docs/closed_forms.md); the formulas are those of :mod:`neural.precond`, reused:

* :class:`VPDiscreteDenoiser`: a network of a discrete variance-preserving schedule ``alpha_bar_t``
  (t = 0..T-1), called ``net(x_vp, t, class_labels)``. With ``a = 1 / (1 + sigma^2)`` (the
  ``alpha_bar`` of sigma), its input is ``x_vp = sqrt(a) x`` and its output ``o`` gives
    * ``'epsilon'``:      ``D = x - sigma o``
    * ``'v_prediction'``: ``D = sqrt(a) x_vp - sqrt(1 - a) o = a x - sigma sqrt(a) o``
      (``v = sqrt(a) eps - sqrt(1 - a) y``)
    * ``'sample'``:       ``D = o``.
  The timestep fed to the network for a sigma (the input is always scaled with the exact sigma):
    * ``'interpolate'`` (default): the fractional index ``t(sigma)`` of :func:`memgen.noise.sigma_to_timestep`,
      linear in ``log sigma`` between the schedule's steps. Exact at the schedule's own sigmas; between
      them the network sees a timestep it was never trained on (harmless for the usual smooth sinusoidal
      embeddings; the error is the network's own interpolation error).
    * ``'nearest'``: the step whose ``sigma_t`` is nearest in ``log sigma`` (``round(t(sigma))``). The network
      is told a noise level off by up to half a step: ``|log sigma_t - log sigma| <= max_t (log sigma_{t+1}
      - log sigma_t) / 2`` (:meth:`VPDiscreteDenoiser.label_error`). For DDPM's linear schedule with T = 1000
      half a step is below 0.005 in ``log sigma`` for 89% of the steps (median 0.0034), up to 0.20 at its
      smallest sigmas.
  Outside ``[sigma_0, sigma_{T-1}]`` (DDPM linear: about [0.01, 157]) the timestep is clamped to the end step
  in both modes, and the network is told the end step's sigma: ``label_error`` is then
  ``|log sigma - log sigma_end|`` (inside the range it is 0 for ``'interpolate'``).
  A network with twice the input's channels (IDDPM's learned variance) is read from its first half;
  ``sigma_range`` (of every VP network, :class:`neural.precond.VPPrecond`) is ``(sigma_0, sigma_{T-1})``, where a measurement should stay.
* :class:`PreconditionedDenoiser`: a network that already returns ``D``, called ``net(x, sigma, class_labels)``
  (NVlabs EDM's ``EDMPrecond``, k-diffusion's wrapped models).
* :func:`edm_denoiser`: a raw EDM network ``F`` with memgen's EDM preconditioning
  (:class:`neural.precond.EDMPrecond`): ``D = c_skip x + c_out F(c_in x, log(sigma) / 4)``.
* :class:`FunctionDenoiser`: a plain function ``f(x, sigma)`` returning ``x0`` (``D = f``) or ``eps``
  (``D = x - sigma f``).
* diffusers: :func:`from_diffusers` (a ``UNet2DModel``/``UNet2DConditionModel``-style module and a scheduler
  or its ``alphas_cumprod``). The schedule is the scheduler's ``alphas_cumprod`` as given (float32 in
  diffusers, the values its training and sampling use). A local folder written by ``save_pretrained`` is
  read by :func:`neural.diffusers_folder.load_diffusers`.

Every adapter puts the foreign network in eval mode (dropout off, batch norm with its running statistics)
and needs a network with parameters (their device is where it computes; a parameter-free function is a
:class:`FunctionDenoiser`).
"""
from __future__ import annotations

import torch
from torch import nn

from memgen.checks import as_tensor
from memgen.contract import Denoiser, batchwise
from memgen.noise import schedule_sigmas, sigma_to_timestep

from .precond import EDMPrecond, Precond, VPPrecond

PREDICTIONS = ("epsilon", "v_prediction", "sample")
TIMESTEP_MODES = ("interpolate", "nearest")


def _output_tensor(out) -> torch.Tensor:
    """The tensor a foreign network returned: itself, ``out.sample`` (diffusers), or the first of a tuple."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"net: returned {type(out).__name__}; expected a tensor, an object with .sample, or a tuple")


class ForeignNet(nn.Module):
    """A foreign network seen in memgen's calling form ``net(x, noise_label, labels) -> tensor``.

    Calls ``net(x, noise_label, **extra, <label_key>=labels)`` (the label keyword only when labels are
    given) and unwraps the output (:func:`_output_tensor`). ``net`` is put in eval mode and must have parameters. ``extra`` holds further keyword inputs
    (e.g. diffusers' ``encoder_hidden_states``); a tensor in it with batch size 1 is expanded to the batch.
    ``num_classes`` makes the adapter class-conditional (labels are then required).
    """

    def __init__(self, net: nn.Module, *, num_classes: int | None = None, label_key: str = "class_labels",
                 extra: dict | None = None):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net: expected a torch.nn.Module, got {type(net).__name__}")
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 1):
            raise ValueError(f"num_classes: expected a positive integer or None, got {num_classes!r}")
        if extra is not None and not isinstance(extra, dict):
            raise TypeError(f"extra: expected a dict of keyword inputs, got {type(extra).__name__}")
        if next(net.parameters(), None) is None:
            raise ValueError(f"net: {type(net).__name__} has no parameters (their device is where it computes); "
                             "wrap a parameter-free function with FunctionDenoiser")
        self.net = net.eval()
        self.num_classes = None if num_classes is None else int(num_classes)
        self.label_key = label_key
        self.extra = dict(extra or {})

    def forward(self, x, noise_label, labels=None):
        kw = {k: v.expand(x.shape[0], *v.shape[1:]).to(x.device) if isinstance(v, torch.Tensor) and v.shape[:1] == (1,)
              else v for k, v in self.extra.items()}
        if labels is not None:
            kw[self.label_key] = labels
        return _output_tensor(self.net(x, noise_label, **kw))


def _foreign(net, num_classes, label_key, extra) -> nn.Module:
    if isinstance(net, ForeignNet):
        return net
    if num_classes is None:                    # NVlabs EDM networks say label_dim (0: unconditional)
        num_classes = getattr(net, "num_classes", None) or getattr(net, "label_dim", None) or None
    return ForeignNet(net, num_classes=num_classes, label_key=label_key, extra=extra)


def x0_from_prediction(out: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor, prediction: str) -> torch.Tensor:
    """``D(x, sigma)`` from a VP network's output ``o`` at canonical ``x`` (formulas in the module docstring)."""
    s = batchwise(sigma, x)
    if prediction == "epsilon":
        return x - s * out
    if prediction == "v_prediction":
        a = 1 / (1 + s ** 2)
        return a * x - s * a.sqrt() * out
    if prediction == "sample":
        return out
    raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")


class VPDiscreteDenoiser(VPPrecond):
    """A network of a discrete VP schedule (any prediction type) as a canonical denoiser (module docstring).

    Args:
        net: ``net(x_vp, t, class_labels)`` (or any module, wrapped by :class:`ForeignNet` with
            ``num_classes``/``label_key``/``extra``).
        schedule: ``alpha_bar_t`` for t = 0..T-1 (a tensor), or ``'linear'``/``'cosine'`` (:mod:`neural.precond`).
        prediction: ``'epsilon'``, ``'v_prediction'`` or ``'sample'``.
        timestep: ``'interpolate'`` (fractional, default) or ``'nearest'``.
    """

    def __init__(self, net: nn.Module, *, schedule, prediction: str = "epsilon", timestep: str = "interpolate",
                 timesteps: int | None = None, num_classes: int | None = None, label_key: str = "class_labels",
                 extra: dict | None = None, event_shape: tuple | None = None):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {PREDICTIONS}, got {prediction!r}")
        if timestep not in TIMESTEP_MODES:
            raise ValueError(f"timestep: expected one of {TIMESTEP_MODES}, got {timestep!r}")
        if not isinstance(schedule, str):
            schedule = as_tensor(schedule, "schedule", dtype=torch.float64).reshape(-1)
            if schedule.numel() < 2 or bool(((schedule <= 0) | (schedule > 1)).any()):
                raise ValueError("schedule: expected alpha_bar_t in (0, 1] for at least 2 timesteps")
            if bool((schedule[1:] >= schedule[:-1]).any()):
                raise ValueError("schedule: alpha_bar_t must decrease strictly with t")
        super().__init__(_foreign(net, num_classes, label_key, extra), schedule=schedule, timesteps=timesteps,
                         event_shape=event_shape)
        self.prediction, self.timestep_mode = prediction, timestep

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The (float64) timestep fed to the network at noise levels ``sigma`` (``timestep`` mode)."""
        t = sigma_to_timestep(sigma.detach().to(self.alpha_bar.device, torch.float64), self.alpha_bar)
        return (t + 0.5).floor() if self.timestep_mode == "nearest" else t

    def label_error(self, sigma) -> torch.Tensor:
        """``|log sigma_t - log sigma|``: how far the noise level the network is told lies from the true one."""
        s = torch.as_tensor(sigma, dtype=torch.float64, device=self.alpha_bar.device).reshape(-1)
        log_sched = schedule_sigmas(self.alpha_bar).log()
        t = self.timestep(s)
        lo = t.floor().long().clamp(0, len(log_sched) - 1)
        hi = (lo + 1).clamp(max=len(log_sched) - 1)
        told = log_sched[lo] + (t - lo) * (log_sched[hi] - log_sched[lo])
        return (told - s.log()).abs()

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels=None) -> torch.Tensor:
        """Unvalidated ``D(x, sigma)`` from the network's output at ``x_vp = x / sqrt(1 + sigma^2)``."""
        t = self.timestep(sigma).to(x.device, torch.float32)
        out = self._net(x / batchwise((1 + sigma ** 2).sqrt(), x), t, labels)
        if out.dim() == x.dim() > 1 and out.shape[1] == 2 * x.shape[1] and out.shape[2:] == x.shape[2:]:
            out = out[:, :x.shape[1]]               # learned-variance networks (IDDPM) return [prediction, variance]
        return x0_from_prediction(out, x, sigma, self.prediction)


class PreconditionedDenoiser(Precond):
    """A network that already returns the x0-estimate: ``D(x, sigma) = net(x, sigma, class_labels)``.

    For NVlabs EDM's preconditioned networks and k-diffusion's wrapped denoisers (``label_key`` names the
    label keyword, ``class_labels`` by default; EDM's ``label_dim`` is read as the number of classes).
    """

    def __init__(self, net: nn.Module, *, num_classes: int | None = None, label_key: str = "class_labels",
                 extra: dict | None = None, event_shape: tuple | None = None):
        super().__init__(_foreign(net, num_classes, label_key, extra), event_shape)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels=None) -> torch.Tensor:
        return self._net(x, sigma, labels)


def edm_denoiser(net: nn.Module, *, sigma_data: float = 0.5, num_classes: int | None = None,
                 label_key: str = "class_labels", extra: dict | None = None,
                 event_shape: tuple | None = None) -> EDMPrecond:
    """A raw EDM network ``F(c_in x, c_noise, class_labels)`` with memgen's EDM preconditioning
    (:class:`neural.precond.EDMPrecond`: ``D = c_skip x + c_out F(c_in x, log(sigma) / 4)``)."""
    return EDMPrecond(_foreign(net, num_classes, label_key, extra), sigma_data=sigma_data, event_shape=event_shape)


class FunctionDenoiser(Denoiser):
    """A plain function as a denoiser: ``output='x0'``: ``D = f(x, sigma)``; ``output='eps'``: ``D = x - sigma f(x, sigma)``.

    ``f`` receives ``x`` ``[B, *shape]`` and ``sigma`` as a ``[B]`` tensor of ``x``'s dtype and device; a
    module ``f`` is put in eval mode.
    """

    def __init__(self, fn, *, output: str = "x0", event_shape: tuple | None = None):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"fn: expected a callable f(x, sigma), got {type(fn).__name__}")
        if output not in ("x0", "eps"):
            raise ValueError(f"output: expected 'x0' or 'eps', got {output!r}")
        self.fn, self.output = (fn.eval() if isinstance(fn, nn.Module) else fn), output
        self.event_shape = None if event_shape is None else tuple(event_shape)

    def forward(self, x, sigma):
        x, s = self.inputs(x, sigma)
        out = torch.as_tensor(self.fn(x, s)).to(x.dtype)
        if out.shape != x.shape:
            raise ValueError(f"fn: returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}")
        return out if self.output == "x0" else x - batchwise(s, x) * out


def _alphas_cumprod(scheduler) -> torch.Tensor:
    """The scheduler's ``alphas_cumprod`` as given (float32 in diffusers: the values its training and sampling
    use), held in float64 (exact); from its betas, in their own dtype as diffusers does, only when it has none."""
    ab = getattr(scheduler, "alphas_cumprod", None)
    if ab is None:
        betas = getattr(scheduler, "betas", None)
        if betas is None:
            raise TypeError(f"scheduler: {type(scheduler).__name__} has neither alphas_cumprod nor betas")
        betas = torch.as_tensor(betas)
        ab = torch.cumprod(1.0 - betas, 0)
    return torch.as_tensor(ab).to(torch.float64)


def from_diffusers(unet: nn.Module, scheduler=None, *, alphas_cumprod=None, prediction_type: str | None = None,
                   timestep: str = "interpolate", extra: dict | None = None) -> VPDiscreteDenoiser:
    """A diffusers ``UNet2DModel``/``UNet2DConditionModel``-style module as a canonical denoiser.

    Args:
        unet: called ``unet(x_vp, t, class_labels=..., **extra)``; its ``.sample`` is the prediction.
        scheduler: a diffusers scheduler (``DDPMScheduler``, ``DDIMScheduler``, ...) giving the schedule and,
            unless ``prediction_type`` is passed, the prediction type; or None with ``alphas_cumprod``.
        alphas_cumprod: ``alpha_bar_t`` for t = 0..T-1 when no scheduler is given.
        prediction_type: ``'epsilon'``, ``'v_prediction'`` or ``'sample'`` (default: the scheduler's).
        timestep: ``'interpolate'`` or ``'nearest'`` (module docstring).
        extra: further keyword inputs, e.g. ``{'encoder_hidden_states': h}`` for a ``UNet2DConditionModel``.
    A model with class embeddings (``config.num_class_embeds``) needs labels (``.with_labels(k)``).
    """
    if (scheduler is None) == (alphas_cumprod is None):
        raise ValueError("scheduler: pass exactly one of scheduler and alphas_cumprod")
    config = getattr(scheduler, "config", None)
    if prediction_type is None:
        prediction_type = getattr(config, "prediction_type", None) or "epsilon"
    ab = _alphas_cumprod(scheduler) if scheduler is not None else alphas_cumprod
    ucfg = getattr(unet, "config", None)
    num_classes = getattr(ucfg, "num_class_embeds", None) or None
    shape = None
    if getattr(ucfg, "sample_size", None) is not None and getattr(ucfg, "in_channels", None) is not None:
        size = ucfg.sample_size
        shape = (ucfg.in_channels, *((size, size) if isinstance(size, int) else tuple(size)))
    return VPDiscreteDenoiser(unet, schedule=ab, prediction=prediction_type, timestep=timestep,
                              num_classes=num_classes, extra=extra, event_shape=shape)
