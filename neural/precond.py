"""Preconditioning: a raw network ``F(input, noise_label, class_labels)`` becomes a :class:`memgen.Denoiser`.

EDM (Karras et al. 2022), for the canonical ``x = y + sigma eps``:
    ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)``,
    ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
    ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = log(sigma) / 4``   (``sd = sigma_data``).

Variance-preserving eps-prediction (DDPM linear / IDDPM cosine): the network was trained on
``x_vp = sqrt(ab_t) y + sqrt(1 - ab_t) eps`` at integer timesteps ``t`` (0-based) to predict ``eps``.
At canonical sigma: ``ab = 1 / (1 + sigma^2)``, ``x_vp = x / sqrt(1 + sigma^2)``, the network's
timestep is the fractional index ``t(sigma)`` of :func:`memgen.noise.sigma_to_timestep` (clamped to the
schedule's range), and ``D = x - sigma eps_hat``.

Class-conditional networks need labels: pass ``labels`` to ``forward`` or bind them once with
:meth:`Precond.with_labels`; a conditional network called without labels raises a ValueError.
"""
from __future__ import annotations

import torch
from torch import nn

from memgen.checks import positive
from memgen.contract import Denoiser, batchwise, model_device
from memgen.noise import ddpm_linear_alpha_bar, iddpm_cosine_alpha_bar, schedule_sigmas, sigma_to_timestep

SCHEDULES = {"linear": (ddpm_linear_alpha_bar, 1000), "cosine": (iddpm_cosine_alpha_bar, 4000)}
"""VP schedules by name: ``(alpha_bar function of T, default T)``."""


class Precond(Denoiser):
    """Common part of the wrappers: the network, labels, memory format; ``forward`` validates then denoises."""

    def __init__(self, net: nn.Module, event_shape: tuple | None = None):
        super().__init__()
        self.net = net
        self.event_shape = None if event_shape is None else tuple(event_shape)
        self.channels_last = False

    @property
    def num_classes(self) -> int | None:
        return getattr(self.net, "num_classes", None)

    def _labels(self, labels, batch: int, device) -> torch.Tensor | None:
        if self.num_classes is None:
            return None
        if labels is None:
            raise ValueError(f"labels: the network is class-conditional ({self.num_classes} classes); pass labels "
                             "or bind them with .with_labels(k)")
        lab = torch.as_tensor(labels, device=device).reshape(-1)
        if lab.is_floating_point() and not bool((lab == lab.round()).all()):
            raise ValueError(f"labels: expected integer class labels, got {lab.tolist()[:8]}")
        lab = lab.long()
        if lab.numel() == 1:
            lab = lab.expand(batch)
        if lab.shape[0] != batch:
            raise ValueError(f"labels: expected one label or {batch} labels, got {lab.shape[0]}")
        if bool(((lab < 0) | (lab >= self.num_classes)).any()):
            raise ValueError(f"labels: must lie in [0, {self.num_classes - 1}]")
        return lab

    def _net(self, inp: torch.Tensor, noise_label: torch.Tensor, labels) -> torch.Tensor:
        if self.channels_last and inp.dim() == 4:
            inp = inp.contiguous(memory_format=torch.channels_last)
        return self.net(inp, noise_label, labels).float()

    def forward(self, x, sigma, labels=None):
        """``D(x, sigma)``, computed in float32 on the network's device, returned in ``x``'s dtype and device."""
        x, s = self.inputs(x, sigma)
        dtype, device = x.dtype, x.device
        dev = model_device(self.net)                      # CPU for a network without parameters
        x, s = x.to(dev, torch.float32), s.to(dev, torch.float32)
        return self.denoise(x, s, self._labels(labels, x.shape[0], dev)).to(device, dtype)

    def with_labels(self, labels) -> "Conditioned":
        """This denoiser with its class labels fixed (one label for all, or one per sample)."""
        return Conditioned(self, labels)


class EDMPrecond(Precond):
    """``D(x, sigma) = c_skip x + c_out F(c_in x, log(sigma)/4)`` (see the module docstring)."""

    def __init__(self, net: nn.Module, *, sigma_data: float = 0.5, event_shape: tuple | None = None):
        super().__init__(net, event_shape)
        self.sigma_data = positive(sigma_data, "sigma_data")

    @classmethod
    def from_config(cls, net: nn.Module, model, shape: tuple) -> "EDMPrecond":
        """``net`` preconditioned as a :class:`neural.config.ModelConfig` says (``sigma_data``)."""
        return cls(net, sigma_data=model.sigma_data, event_shape=shape)

    def coefficients(self, sigma: torch.Tensor):
        """``(c_skip, c_out, c_in, c_noise)`` for noise levels ``sigma`` ``[B]``."""
        sd2 = self.sigma_data ** 2
        r = (sigma ** 2 + sd2).sqrt()
        return sd2 / r ** 2, sigma * self.sigma_data / r, 1 / r, sigma.log() / 4

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels=None) -> torch.Tensor:
        """Unvalidated ``D(x, sigma)`` for ``x`` ``[B, *shape]``, sigma ``[B]`` (training path)."""
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        f = self._net(batchwise(c_in, x) * x, c_noise, labels)
        return batchwise(c_skip, x) * x + batchwise(c_out, x) * f


class VPPrecond(Precond):
    """Eps-prediction network of a discrete VP schedule, as a canonical denoiser (see the module docstring).

    Args:
        net: the eps network ``net(x_vp, t, class_labels)``, ``t`` the 0-based (fractional) timestep.
        schedule: ``'linear'`` (DDPM, beta 1e-4..2e-2) or ``'cosine'`` (IDDPM), or an ``alpha_bar`` tensor.
        timesteps: ``T`` (default 1000 for linear, 4000 for cosine).
    """

    def __init__(self, net: nn.Module, *, schedule="linear", timesteps: int | None = None,
                 event_shape: tuple | None = None):
        super().__init__(net, event_shape)
        if isinstance(schedule, str):
            if schedule not in SCHEDULES:
                raise ValueError(f"schedule: expected one of {sorted(SCHEDULES)} or an alpha_bar tensor, got {schedule!r}")
            fn, default_t = SCHEDULES[schedule]
            alpha_bar = fn(int(timesteps or default_t))
        else:
            alpha_bar = torch.as_tensor(schedule, dtype=torch.float64)
        self.register_buffer("alpha_bar", alpha_bar.to(torch.float64), persistent=False)

    @classmethod
    def from_config(cls, net: nn.Module, model, shape: tuple) -> "VPPrecond":
        """``net`` preconditioned as a :class:`neural.config.ModelConfig` says (``schedule``, ``timesteps``)."""
        return cls(net, schedule=model.schedule, timesteps=model.timesteps or None, event_shape=shape)

    @property
    def timesteps(self) -> int:
        return self.alpha_bar.shape[0]

    @property
    def sigma_range(self) -> tuple[float, float]:
        """``(sigma_0, sigma_{T-1})``: the noise levels the network was trained on (outside: the end step)."""
        sig = schedule_sigmas(self.alpha_bar)
        return float(sig[0]), float(sig[-1])

    def eps(self, x_vp: torch.Tensor, t: torch.Tensor, labels=None) -> torch.Tensor:
        """The network's noise prediction at VP state ``x_vp`` and timestep ``t`` (training path)."""
        return self._net(x_vp, t.float(), labels)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, labels=None) -> torch.Tensor:
        """Unvalidated ``D(x, sigma) = x - sigma eps_hat(x / sqrt(1 + sigma^2), t(sigma))``."""
        t = sigma_to_timestep(sigma.to(self.alpha_bar.device), self.alpha_bar).to(x.device)
        eps_hat = self.eps(x / batchwise((1 + sigma ** 2).sqrt(), x), t, labels)
        return x - batchwise(sigma, x) * eps_hat


class Conditioned(Denoiser):
    """A class-conditional denoiser with its labels bound: ``forward(x, sigma) = model(x, sigma, labels)``."""

    def __init__(self, model: Precond, labels):
        super().__init__()
        self.model = model
        self.labels = labels
        self.event_shape = model.event_shape

    def forward(self, x, sigma):
        return self.model(x, sigma, self.labels)


PRECONDS = {"edm": EDMPrecond, "vp": VPPrecond}
"""The preconditionings by the name ``model.precond`` gives (validation reads the names, models are built
with ``PRECONDS[name].from_config(net, model_config, shape)``)."""
