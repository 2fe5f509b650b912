"""Kaiser & Kollmann's claims 2-4: each criterion separates its controls at quick scale, and the statistics
behind them agree with independent references (brute force, identities)."""
import math

import numpy as np
import pytest
import torch

from compare.bootstrap import bootstrap, weighted_mean
from compare.peaks import gap_peak
from lab.claims import kaiser
from lab.claims.base import seed_labels
from memgen.data import circle
from memgen.noise import log_sigmas
from toymodels import SmoothedDenoiser


def _quick(number: int) -> dict:
    return next(c for c in kaiser.CLAIMS if c.number == number).settings("quick")


@pytest.mark.parametrize("number, positive, negative", [
    (2, kaiser.errorprone_positive, kaiser.errorprone_negative),
    (3, kaiser.trained_gap_positive, kaiser.trained_gap_negative),
    (4, kaiser.trajectories_positive, kaiser.trajectories_negative)])
def test_criterion_separates_its_controls(tmp_path, number, positive, negative):
    s = _quick(number)
    pos = positive(s, tmp_path / "positive", [0], False)
    neg = negative(s, tmp_path / "negative", [0], False)
    assert pos.verdict[0] == "reproduced", pos.conditions
    assert neg.verdict[0] == "not reproduced", neg.conditions
    assert (tmp_path / "positive" / "claim.png").is_file()


def test_paired_noise_rotates_each_training_draw_onto_its_validation_point():
    ds = circle(20)
    zt, zv = kaiser.paired_noise(ds, 3, seed=2)
    angle = 2 * math.pi / 20                                   # validation point i is training point i turned by this
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    torch.testing.assert_close(zv, zt @ rot.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(ds.val.double(), ds.train.double() @ rot.T, atol=1e-5, rtol=0)
    sig = log_sigmas(5, 0.1, 10.0)
    e = kaiser.paired_errors(SmoothedDenoiser(ds.x, 1.6, dtype=torch.float64), ds, sig, n_draws=3, seed=2)
    np.testing.assert_allclose(e[:, 1], e[:, 0], rtol=1e-5)   # equivariant model: equal errors on both of a pair
    e = kaiser.paired_errors(SmoothedDenoiser(ds.train, 1.6, dtype=torch.float64), ds, sig, n_draws=3, seed=2)
    assert (e[:, 1].mean(0) > 1.05 * e[:, 0].mean(0)).any()    # the model of the training points is not


def test_paired_noise_needs_equal_halves():
    with pytest.raises(ValueError, match="as many training as validation"):
        kaiser.paired_noise(circle(7), 2, seed=0)


def _brute_force_deloc(y: np.ndarray, z: np.ndarray, grid: np.ndarray, level: float) -> float:
    """Mean exp(H) of softmax_j(-||y_i + s z_ki - y_j||^2 / 2 s^2) by explicit loops, then the log-linear crossing."""
    means = []
    for s in grid:
        vals = []
        for zk in z:
            for i in range(len(y)):
                logits = -((y[i] + s * zk[i] - y) ** 2).sum(1) / (2 * s * s)
                w = np.exp(logits - logits.max())
                w /= w.sum()
                vals.append(np.exp(-(w[w > 0] * np.log(w[w > 0])).sum()))
        means.append(np.mean(vals))
    m = np.asarray(means)
    j = int(np.argmax(m >= level))
    t = (level - m[j - 1]) / (m[j] - m[j - 1])
    return float(np.exp(np.log(grid[j - 1]) + t * np.log(grid[j] / grid[j - 1])))


def test_delocalization_sigma_matches_brute_force_and_scales_with_the_data():
    y = torch.randn(9, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = kaiser.delocalization_sigma(y, n_draws=2, seed=5, n_grid=41)
    flat = y.numpy()
    rms = np.sqrt(((flat - flat.mean(0)) ** 2).sum(1).mean())
    z = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64).numpy()
    ref = _brute_force_deloc(flat, z, rms * np.geomspace(1e-3, 10.0, 41), 2.0)
    assert got == pytest.approx(ref, rel=1e-9)
    assert kaiser.delocalization_sigma(7.0 * y, n_draws=2, seed=5, n_grid=41) == pytest.approx(7.0 * got, rel=1e-9)
    with pytest.raises(ValueError, match="level"):
        kaiser.delocalization_sigma(y, level=9.0)


def test_gap_peaks_at_unit_weights_is_compare_gap_peak():
    rng = np.random.default_rng(0)
    sig = np.geomspace(0.1, 10, 9)
    et = rng.uniform(1, 2, (12, 9))
    ev = et * (1 + np.exp(-np.log(sig) ** 2))[None] + rng.uniform(0, 0.1, (12, 9))
    ls, h = kaiser.gap_peaks(np.ones((1, 12)), np.ones((1, 12)), et[:, None], ev[:, None], sig)
    ref = gap_peak(et, ev, sig, n_boot=10)
    assert math.exp(ls[0, 0]) == pytest.approx(ref["sigma_peak"], rel=1e-12)
    assert h[0, 0] == pytest.approx(ref["gap_peak"], rel=1e-12)


def test_joint_bootstrap_is_the_bootstrap_of_each_number_in_the_same_replicates():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=30), rng.normal(size=30)
    labels = seed_labels([10, 10, 10])
    q = kaiser.joint_bootstrap(lambda w: {"a": weighted_mean(w, a), "d": weighted_mean(w, a - b)}, (30,),
                               [labels], seed=4)
    for key, v in (("a", a), ("d", a - b)):
        ref = bootstrap(lambda w: weighted_mean(w, v), 30, n_boot=kaiser.N_BOOT, seed=4, clusters=[labels])
        np.testing.assert_allclose(q[key], [float(x) for x in ref], rtol=1e-12)


def test_novel_checkpoint_is_the_last_without_replicates_before_the_final():
    rows = [{"step": st, "replicate_fraction_hi": hi} for st, hi in ((10, 0.0), (20, 0.05), (40, 0.3), (80, 0.0))]
    assert kaiser._novel_and_last(rows) == (20, 80)              # the final one is never the novel one
    assert kaiser._novel_and_last([dict(r, replicate_fraction_hi=0.5) for r in rows]) == (None, 80)


def test_no_novel_checkpoint_means_not_run(tmp_path):
    """Never silently the first checkpoint: a seed without a novel checkpoint leaves claims 3 and 4 not run."""
    s = _quick(3)
    rows = [{"step": k, "setting": "x", "replicate_fraction": 0.9, "replicate_fraction_lo": 0.8,
             "replicate_fraction_hi": 1.0} for k in range(3)]
    out = kaiser._gap_growth(lambda s, out, seed: (rows, None), s, tmp_path, [0], False)
    assert out.verdict[0] == "not run"
    assert out.numbers["seeds_without_novel_checkpoint"] == [0]
    assert [r["regime"] for r in out.regimes] == ["memorizing"]   # the final checkpoint is still reported
    out = kaiser._states_like_unseen(lambda s, out, seed: (None, []), s, tmp_path, [0], False)
    assert out.verdict[0] == "not run"
