"""Denoisers defined in closed form, all behind the :class:`memgen.Denoiser` contract.

The exact empirical engine (its public estimators and their private kernels) lives in
:mod:`toymodels.empirical`; the random-features model, its exact training dynamics and its spectral theory
live in :mod:`toymodels.rf`.
"""
from .empirical import EmpiricalDenoiser, SmoothedDenoiser
from .gaussian import GaussianDenoiser, GMMDenoiser
from . import rf
from .rf import RFDenoiser, RFScore

__all__ = ["EmpiricalDenoiser", "SmoothedDenoiser", "GaussianDenoiser", "GMMDenoiser", "RFScore", "RFDenoiser", "rf"]
