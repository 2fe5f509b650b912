"""Claims 11-12 (Marion & Wu): the fidelity-gap statistic against independent references, and each criterion
on its controls."""
import numpy as np
import pytest
import torch

from compare.fidelity import frechet_distance
from compare.fidelity_gap import held_out_subsets, random_relu_features, referenced_gaps, weighted_frechet
from lab.claims import marion


def _features(n, k=5, seed=0):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.5 + 0.1 * seed


def test_weighted_frechet_at_unit_weights_is_the_frechet_distance():
    a, b = _features(40), _features(30, seed=1)
    got = weighted_frechet(torch.ones(1, 40), a, torch.ones(1, 30), b)
    assert float(got[0]) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def test_weighted_frechet_with_integer_weights_is_that_of_the_repeated_points():
    a, b = _features(20), _features(25, seed=2)
    w = torch.from_numpy(np.random.default_rng(0).multinomial(20, np.full(20, 1 / 20))).double()
    got = weighted_frechet(w[None], a, torch.ones(1, 25), b)
    assert float(got[0]) == pytest.approx(frechet_distance(a.repeat_interleave(w.long(), 0), b), rel=1e-9)


def test_held_out_subsets_are_disjoint_and_size_matched():
    subs = held_out_subsets(100, 12, 8, seed=3)
    assert [len(s) for s in subs] == [12] * 8
    assert len(np.unique(np.concatenate(subs))) == 96
    with pytest.raises(ValueError, match="disjoint"):
        held_out_subsets(100, 12, 9)


def test_gap_of_the_training_set_itself_is_one_and_of_its_twin_arm_difference_zero():
    phi = random_relu_features(6, 8, seed=0)
    pts = torch.randn(200, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t, refs = phi(pts[:20]), [phi(pts[20 + 20 * k:40 + 20 * k]) for k in range(4)]
    r = referenced_gaps([[t, t], [t, t]], t, refs, n_boot=50)
    assert r["gap"][0] == pytest.approx([1.0, 1.0], abs=1e-9)         # D_train = 0, D_val = D_copy
    assert r["difference"][0] == pytest.approx([0.0], abs=1e-12)


def test_claim12_separates_its_controls_at_quick_scale(tmp_path):
    torch.set_num_threads(1)
    s = marion.CLAIMS[1].settings("quick")
    pos = marion.fidelity_positive(s, tmp_path / "p", [0], False)
    neg = marion.fidelity_negative(s, tmp_path / "n", [0], False)
    assert pos.verdict[0] == "reproduced", pos.conditions
    assert neg.verdict[0] == "not reproduced", neg.conditions
    assert neg.conditions[0].lo > 0.25 and neg.numbers["mondrian"]["gap"]["memorizing"][0] > 0.8


def test_claim11_negative_control_memorizes_at_once_and_fails(tmp_path):
    torch.set_num_threads(1)
    s = marion.CLAIMS[0].settings("quick")
    neg = marion.onset_negative(s, tmp_path, [0], False)
    assert neg.verdict[0] == "not reproduced"
    assert [c.value for c in neg.conditions] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert all(r["tau_mem"] == 10.0 for r in neg.numbers["runs"])


def test_claim11_positive_control_finds_the_onset_slope_near_minus_one(tmp_path):
    s = marion.CLAIMS[0].settings("cpu")
    pos = marion.onset_positive(s, tmp_path, [0, 1, 2], False)
    batch, width = pos.conditions
    assert -1.2 < batch.value < -0.8 and batch.status != "fail"
    assert width.status == "pass" and width.value == pytest.approx(-0.5, abs=0.15)


def test_claim12_generalizing_checkpoint_has_essentially_no_replicates():
    """Between 0.1 and 0.5 a checkpoint is 'generalizing' by the regime rule but not novel: claim 12 skips it."""
    def row(step, lo, hi):
        return {"step": step, "replicate_fraction_lo": lo, "replicate_fraction_hi": hi}
    rows = [row(10, 0.0, 0.05), row(20, 0.02, 0.09), row(40, 0.15, 0.3), row(80, 0.6, 0.8)]
    assert marion._checkpoints(rows) == (20, 80)
    assert marion._checkpoints(rows[2:]) == (None, 80)
    assert marion._checkpoints(rows[:3]) == (20, None)            # the last is not memorizing
