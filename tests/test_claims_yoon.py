"""Claims 8-10 (lab.claims.yoon): Mondrian-class samples and their replicate and validity flags against brute
force and an exact class-conditional denoiser; the 0.5 crossing, the slope, the joint two-level interval and the
Random Ink rule against references; each criterion separates its controls at quick scale."""
import numpy as np
import pytest
import torch

from compare.bootstrap import mean_interval
from compare.fidelity import mondrian_valid_fraction
from lab.claims.base import joint_interval, seed_mean
from lab.claims.registry import CLAIMS
from lab.claims.yoon import (MONDRIAN, ExactPerClass, _slope, crossing,
                                 mondrian_samples, mondrian_scores, random_ink_rule)
from memgen.data import mixture, mondrian, random_ink


def _ratio_replicates(samples, train) -> np.ndarray:
    d = torch.cdist(samples.reshape(len(samples), -1).double(), train.reshape(len(train), -1).double()).sort(1).values
    return (d[:, 0] / d[:, 1] < 1 / 3).numpy()


def test_mondrian_scores_match_brute_force():
    data = mixture({"mondrian": 12, "gm_dummies": 24}, size=8, seed=0)
    g = torch.Generator().manual_seed(1)
    near = (data.train[:6] + 0.01 * torch.randn(data.train[:6].shape, generator=g)).clamp(-1, 1)
    fresh = mondrian(10, size=8, seed=7).x                    # Mondrians never trained on
    samples = torch.cat([near, fresh, data.train[12:16]])     # + four training dummies, copied
    row = mondrian_scores(samples, data.train, tol=0.2, n_boot=200, seed=0)
    brute = _ratio_replicates(samples, data.train)
    assert brute[:6].all() and brute[16:].all()               # the copies replicate
    assert row["replicate_fraction"] == pytest.approx(brute.mean(), abs=1e-12)
    assert np.array_equal(row["replicate"], brute) and row["valid"].mean() == row["validity"]    # per-sample flags
    assert row["validity"] == pytest.approx(mondrian_valid_fraction(samples, tol=0.2), abs=1e-12)
    assert mondrian_valid_fraction(samples[:16], tol=0.2) == 1.0    # Mondrians and their near-copies obey the rule
    for key in ("replicate_fraction", "validity"):
        assert row[f"{key}_lo"] <= row[key] <= row[f"{key}_hi"]


def test_mondrian_samples_of_an_exact_conditional_denoiser_land_on_mondrian_training_images():
    data = mixture({"mondrian": 6, "gm_dummies": 18}, size=4, seed=2)
    model = ExactPerClass(data.train, data.train_labels)
    x = mondrian_samples(model, data.shape, n_samples=16, steps=18, seed=3)
    assert x.shape == (16, *data.shape) and x.abs().max() <= 1             # clipped to the image range
    d = torch.cdist(x.reshape(16, -1).double(), data.train.reshape(len(data.train), -1).double())
    nearest = d.argmin(1)
    assert (data.train_labels[nearest] == MONDRIAN).all()                  # the Mondrian class, never a dummy
    assert float(d.min(1).values.max()) < 0.05                             # on a training image
    assert torch.equal(x, mondrian_samples(model, data.shape, n_samples=16, steps=18, seed=3))   # seeded
    assert not torch.equal(x, mondrian_samples(model, data.shape, n_samples=16, steps=18, seed=4))
    row = mondrian_scores(x, data.train, tol=0.2, n_boot=100)
    assert row["replicate_fraction"] == 1.0 and row["validity"] == 1.0




def _crossing_reference(sizes, f, level=0.5):
    """Brute force: walk the grid; interpolate log n between the last point at or above ``level`` and the next."""
    for i in range(len(sizes)):
        if f[i] < level:
            if i == 0:
                return sizes[0], True
            x0, x1 = np.log(sizes[i - 1]), np.log(sizes[i])
            return float(np.exp(x0 + (x1 - x0) * (f[i - 1] - level) / (f[i - 1] - f[i]))), False
    return sizes[-1], True


def test_crossing_matches_the_walk_on_the_grid():
    sizes = [8, 16, 32, 64]
    cases = [[1.0, 0.8, 0.2, 0.0], [1.0, 0.5, 0.5, 0.4], [0.4, 0.9, 0.1, 0.0], [1.0, 1.0, 0.9, 0.6],
             [0.9, 0.3, 0.7, 0.1], [1.0, 1.0, 1.0, 0.49]]
    cap, cens = crossing(sizes, cases)
    for row, c, z in zip(cases, cap, cens):
        ref, ref_cens = _crossing_reference(sizes, row)
        assert c == pytest.approx(ref, rel=1e-12) and z == ref_cens
    assert cap[0] == pytest.approx(2 ** 4.5)                 # 0.8 -> 0.2 between 16 and 32: halfway in log n
    assert cap[1] == pytest.approx(32.0)      # 0.5 at 32 is not below; 0.4 at 64: the crossing is 32 itself
    assert list(cens) == [False, False, True, True, False, False]
    with pytest.raises(ValueError, match="sizes"):
        crossing([8, 8, 16, 32], cases)


def test_slope_is_least_squares():
    rng = np.random.default_rng(0)
    x, y = np.log([32.0, 64.0, 128.0]), rng.normal(size=(5, 3))
    assert np.allclose(_slope(x, y), [np.polyfit(x, row, 1)[0] for row in y], atol=1e-12)


def test_joint_interval_of_one_group_is_the_two_level_mean_interval():
    """One group: the clustered :func:`compare.bootstrap.mean_interval` of the pooled units (and so ``seed_mean``)."""
    rng = np.random.default_rng(1)
    per_seed = [rng.random(40) < p for p in (0.2, 0.5, 0.7)]
    est, lo, hi = joint_interval([per_seed], lambda m: m, seed=3)
    want = mean_interval(np.concatenate(per_seed).astype(float), clusters=np.repeat(np.arange(3), 40), n_boot=2000,
                         seed=3)
    assert (float(est[0]), float(lo[0]), float(hi[0])) == pytest.approx(want, abs=1e-12)
    assert seed_mean(per_seed, seed=3) == pytest.approx(want, abs=1e-12)
    a, b = [rng.random(30) < 0.8 for _ in range(3)], [rng.random(30) < 0.3 for _ in range(3)]
    est, lo, hi = joint_interval([a, b], lambda m: m[:, 1:] - m[:, :1], seed=0)
    assert float(est[0]) == pytest.approx(np.mean(np.concatenate(b)) - np.mean(np.concatenate(a)), abs=1e-12)
    assert lo[0] <= est[0] <= hi[0] < 0


@pytest.mark.parametrize("size", [4, 8])
def test_random_ink_rule_separates_held_out_images(size):
    mo, ri = mondrian(2000, size=size, seed=123).x, random_ink(2000, size=size, seed=321).x
    assert not random_ink_rule(mo).any() and random_ink_rule(ri).all()


@pytest.fixture(scope="module")
def quick_control(tmp_path_factory):
    """``quick_control(number, kind)``: the claim's positive or negative control at quick scale, one seed (run once)."""
    done = {}

    def run(number: int, kind: str):
        if (number, kind) not in done:
            claim = CLAIMS[number]
            done[number, kind] = getattr(claim, kind).run(claim.settings("quick"),
                                                         tmp_path_factory.mktemp(f"claim{number}-{kind}"), [0], False)
        return done[number, kind]
    return run


@pytest.mark.parametrize("number", [8, 9, 10])
def test_criterion_separates_its_controls_at_quick_scale(number, quick_control):
    pos, neg = quick_control(number, "positive"), quick_control(number, "negative")
    assert pos.verdict[0] == "reproduced", pos.conditions
    assert neg.verdict[0] == "not reproduced", neg.conditions
    assert pos.regimes == [] and neg.regimes == []


def test_capacity_controls_numbers(quick_control):
    pos, neg = quick_control(8, "positive"), quick_control(8, "negative")
    s = CLAIMS[8].settings("quick")
    n0 = min(s["sizes"])
    for w in s["widths"]:                       # crossing of min(1, m / n) at n = 2 m, m = n0 w / w0
        est, lo, hi = pos.numbers["gmm"]["capacity"][w]
        assert lo <= 2 * n0 * w / min(s["widths"]) <= hi
    assert neg.numbers["gmm"]["slope"] == [0.0, 0.0, 0.0]                     # every width at the grid's top
    assert all(v == 1.0 for v in neg.numbers["gmm"]["fractions"].values())
