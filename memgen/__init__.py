"""memgen: memorization and generalization in diffusion models, measured on one contract.

Public names: :class:`Denoiser` (the contract), :func:`edm_sigmas`, :func:`sample`, the schedule
conversions, and :mod:`memgen.data`.
"""
from . import data
from .contract import Denoiser, Posterior, eps, model_device, score, supports_posterior, velocity
from .noise import (ddpm_linear_alpha_bar, edm_sigmas, iddpm_cosine_alpha_bar, log_sigmas, ou_delta, ou_to_ve,
                    schedule_sigmas, sigma_to_timestep, ve_to_ou, ve_to_vp, vp_to_ve)
from .samplers import SAMPLERS, Trajectory, sample, sample_ancestral, sample_euler, sample_heun

__version__ = "0.1.0"

__all__ = [
    "Denoiser", "Posterior", "score", "eps", "velocity", "supports_posterior", "model_device",
    "edm_sigmas", "log_sigmas", "vp_to_ve", "ve_to_vp", "ddpm_linear_alpha_bar", "iddpm_cosine_alpha_bar",
    "schedule_sigmas", "sigma_to_timestep", "ou_to_ve", "ve_to_ou", "ou_delta",
    "sample", "sample_euler", "sample_heun", "sample_ancestral", "SAMPLERS", "Trajectory", "data",
]
