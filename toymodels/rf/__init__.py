"""The random-features score model of Bonnaire, Urfin, Biroli & Mézard: model, exact training
dynamics and spectral theory (each module states the equations it computes).

* :mod:`.activations` — tanh / ReLU / erf and their Gaussian expectations (Hermite coefficients).
* :mod:`.constants` — Gaussian-equivalence constants ``mu_0, a_t, b_t, v_t^2, s_t^2``.
* :mod:`.matrices` — U, V (exact by Mehler quadrature, or Monte Carlo), population and
  Gaussian-equivalent matrices.
* :mod:`.dynamics` — closed-form train/test loss and score error at any time; their half-way crossing
  times (:func:`crossing_times`).
* :mod:`.simulate` — gradient descent and Adam with fresh noise (torch).
* :mod:`.spectrum` — spectral density of U from the saddle point, masses, edges, and the relaxation
  times of its modes (:func:`relaxation_times`).
* :mod:`.model` — the RF score and its Denoiser wrapper.
"""
from .activations import ACTIVATIONS, Activation, get_activation
from .constants import GEConstants, ge_constants
from .dynamics import ClosedForm, Losses, crossing_times
from .matrices import (RFMatrices, gaussian_equivalent_problem, gaussian_equivalent_U, population_matrices,
                       rf_matrices)
from .model import RFDenoiser, RFScore, true_score_gaussian
from .simulate import default_dtau, simulate
from .spectrum import (Spectrum, SpectrumModel, asymptotic_masses, continuous_density, delta_peak, ks_distance,
                       relaxation_times, solve_spectrum, spectral_cdf, stieltjes)

__all__ = [
    "Activation", "ACTIVATIONS", "get_activation", "GEConstants", "ge_constants", "RFMatrices", "rf_matrices",
    "population_matrices", "gaussian_equivalent_U", "gaussian_equivalent_problem", "Losses", "ClosedForm",
    "crossing_times", "simulate", "default_dtau", "SpectrumModel", "Spectrum", "solve_spectrum", "stieltjes",
    "continuous_density", "delta_peak", "asymptotic_masses", "relaxation_times", "spectral_cdf", "ks_distance",
    "RFScore", "RFDenoiser",
    "true_score_gaussian",
]
