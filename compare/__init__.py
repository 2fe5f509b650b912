"""Metrics and side-by-side comparisons of any denoisers, through the Denoiser contract only.

* denoising error per sigma and the generalization gap: :func:`denoising_error`, :func:`generalization_gap`;
* localization of a flow field: :func:`localization`;
* where sampling trajectories go: :func:`trajectory_distances` (with the validation control: :func:`typicality_control`, :func:`parting_sigma`);
* replicates (ratio criterion over the two nearest training points): :func:`replicates`, :func:`nearest_two`;
* fidelity: :func:`mondrian_validity`, :func:`log_likelihood`, :func:`sliced_wasserstein`, :func:`frechet_distance`;
* feature spaces and the field's metrics: :func:`feature_map`, :func:`cosine_memorization`, :func:`inception_fid`;
* training time scales: :func:`timescales`, :func:`fit_tau_mem`;
* results as tidy :class:`Records` that save to CSV (:func:`read_csv` loads them back).
"""
from .bootstrap import bootstrap, mean_interval
from .gap import common_noise, denoising_error, generalization_gap
from .fidelity import frechet_distance, log_likelihood, mondrian_valid_fraction, mondrian_validity, sliced_wasserstein
from .features import FeatureMap, feature_map
from .fid import inception_fid
from .localization import localization
from .neighbours import Neighbours, nearest_two
from .records import Records, read_csv, summarize
from .replicates import ReplicateResult, replicates
from .similarity import CosineResult, cosine_memorization
from .timescales import fit_tau_mem, sweep_timescales, tau_gen, tau_mem, timescales
from .trajectories import parting_sigma, trajectory_distances, typicality_control

__all__ = [
    "denoising_error", "generalization_gap", "common_noise", "localization", "trajectory_distances", "typicality_control", "parting_sigma",
    "replicates", "ReplicateResult", "nearest_two", "Neighbours", "mondrian_validity", "mondrian_valid_fraction",
    "log_likelihood", "sliced_wasserstein", "frechet_distance", "timescales", "tau_gen", "tau_mem",
    "sweep_timescales", "fit_tau_mem", "Records", "read_csv", "summarize", "bootstrap", "mean_interval",
    "feature_map", "FeatureMap", "cosine_memorization", "CosineResult", "inception_fid",
]
