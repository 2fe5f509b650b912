"""The figure functions at tiny sizes: they run from Python, write their files, and show the papers' effects."""
import pytest

from compare.records import read_csv
from figures.circle_panels import gap_and_trajectory_panels
from figures.errorprone_toy import gap_sweep, peaks
from memgen.noise import log_sigmas


def test_errorprone_gap_peaks_at_intermediate_sigma_and_shrinks_with_delta():
    rows = gap_sweep([(20, 2.0), (20, 1.2), (28, 1.6), (16, 1.6)], log_sigmas(17, 0.01, 100.0), n_draws=100, n_boot=50)
    by_delta = peaks(rows.where(n_points=20), "delta")
    by_density = peaks(rows.where(delta=1.6), "n_points")
    for p in list(by_delta.values()) + list(by_density.values()):
        assert 0.1 < p["sigma_peak"] < 10 and p["gap_peak_lo"] > 0
    assert by_delta[1.2]["gap_peak"] > by_delta[2.0]["gap_peak"]
    assert by_density[28]["gap_peak"] < by_density[16]["gap_peak"]
    assert by_density[28]["sigma_peak"] <= by_density[16]["sigma_peak"]
    for r in rows:                                    # Kaiser & Kollmann's error: unsquared L2
        assert r["metric"] == "l2"


def test_circle_panels_for_the_demo(tmp_path):
    paths, summary = gap_and_trajectory_panels(tmp_path, deltas=(1.6,), n_draws=40, n_samples=60, steps=10)
    assert all(p.is_file() for p in paths)
    traj = read_csv(tmp_path / "circle_trajectories.csv")
    assert set(traj.column("model")) == {"optimal", "smoothed (delta=1.6)", "noisy training data"}
    end = summary["trajectories"]
    assert end["circle / smoothed (delta=1.6)"]["typicality_median"] < 5           # left the noisy data
    assert 20 < end["circle / optimal"]["typicality_median"] < 80                  # stays typical
    assert end["circle / optimal"]["normalized_distance_median"] == pytest.approx(
        end["circle / noisy training data"]["normalized_distance_median"], rel=0.5)
