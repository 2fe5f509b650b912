"""Training objectives, each split into ``draw`` (the randomness of one global batch) and ``forward``.

Drawing the noise for the whole global batch and slicing it per process makes a data-parallel run
consume exactly the numbers of a single-process run with the same global batch.

* EDM: ``ln sigma ~ N(p_mean, p_std^2)``, ``x = y + sigma eps``,
  ``loss = lambda(sigma) ||D(x, sigma) - y||^2 / d``, ``lambda = (sigma^2 + sd^2) / (sigma sd)^2``
  (for :class:`EDMPrecond` this is ``||F - F_target||^2 / d``, unit variance at every sigma).
* DDPM: ``t ~ U{0..T-1}``, ``x_vp = sqrt(ab_t) y + sqrt(1 - ab_t) eps``, ``loss = ||eps_hat(x_vp, t) - eps||^2 / d``.
  In the canonical form this is ``||D(x, sigma_t) - y||^2 / (d sigma_t^2)``.

``forward`` returns the per-sample losses ``[B]``; the training loss is their mean.
"""
from __future__ import annotations

import torch
from torch import nn

from memgen.checks import positive

from memgen.contract import batchwise

from .precond import EDMPrecond, VPPrecond


class EDMLoss(nn.Module):
    """EDM's objective for any preconditioned denoiser (``model.denoise(x, sigma, labels)``)."""

    precond = None
    """The preconditioning the loss needs (None: any)."""

    def __init__(self, model: EDMPrecond | VPPrecond, *, p_mean: float = -1.2, p_std: float = 1.2,
                 sigma_data: float = 0.5):
        super().__init__()
        self.model = model
        self.p_mean, self.p_std = float(p_mean), positive(p_std, "p_std")
        self.sigma_data = getattr(model, "sigma_data", positive(sigma_data, "sigma_data"))

    @classmethod
    def from_config(cls, model, config) -> "EDMLoss":
        """The loss of a :class:`neural.config.Config` (``train.p_mean``, ``train.p_std``, ``model.sigma_data``)."""
        return cls(model, p_mean=config.train.p_mean, p_std=config.train.p_std, sigma_data=config.model.sigma_data)

    def draw(self, batch: int, shape: tuple, generator: torch.Generator, device) -> dict:
        """``sigma`` ``[batch]`` and standard normal ``noise`` ``[batch, *shape]``."""
        ln_sigma = self.p_mean + self.p_std * torch.randn(batch, generator=generator, device=device)
        return {"sigma": ln_sigma.exp(), "noise": torch.randn((batch, *shape), generator=generator, device=device)}

    def forward(self, y: torch.Tensor, labels, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        sd2 = self.sigma_data ** 2
        weight = (sigma ** 2 + sd2) / (sigma ** 2 * sd2)
        den = self.model.denoise(y + batchwise(sigma, y) * noise, sigma, labels)
        return weight * (den - y).pow(2).flatten(1).mean(1)


class DDPMLoss(nn.Module):
    """DDPM's simple objective for an eps-prediction network wrapped in :class:`VPPrecond`."""

    precond = "vp"

    def __init__(self, model: VPPrecond):
        super().__init__()
        if not isinstance(model, VPPrecond):
            raise TypeError("model: the DDPM loss needs an eps-prediction network wrapped in VPPrecond")
        self.model = model

    @classmethod
    def from_config(cls, model, config) -> "DDPMLoss":
        return cls(model)

    def draw(self, batch: int, shape: tuple, generator: torch.Generator, device) -> dict:
        """Integer timesteps ``t`` ``[batch]`` and standard normal ``noise`` ``[batch, *shape]``."""
        t = torch.randint(0, self.model.timesteps, (batch,), generator=generator, device=device)
        return {"t": t, "noise": torch.randn((batch, *shape), generator=generator, device=device)}

    def forward(self, y: torch.Tensor, labels, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self.model.alpha_bar.to(y.device)[t].to(y.dtype)
        x_vp = batchwise(ab.sqrt(), y) * y + batchwise((1 - ab).sqrt(), y) * noise
        return (self.model.eps(x_vp, t, labels) - noise).pow(2).flatten(1).mean(1)


LOSSES = {"edm": EDMLoss, "ddpm": DDPMLoss}
"""The losses by the name ``train.loss`` gives: validation reads the names (and ``precond``), training
builds ``LOSSES[name].from_config(model, config)``."""
