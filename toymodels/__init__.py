"""Denoisers defined in closed form, all behind the :class:`memgen.Denoiser` contract."""
from .empirical import EmpiricalDenoiser, SmoothedDenoiser
from .gaussian import GaussianDenoiser, GMMDenoiser

__all__ = ["EmpiricalDenoiser", "SmoothedDenoiser", "GaussianDenoiser", "GMMDenoiser"]
