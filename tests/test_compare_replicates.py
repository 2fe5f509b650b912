"""Nearest two training points and the replicate criterion against brute force."""
import numpy as np
import pytest
import torch

from compare.neighbours import nearest_two
from compare.replicates import ratio, replicates


def _brute(q, y):
    d = torch.cdist(q.reshape(len(q), -1).double(), y.reshape(len(y), -1).double())
    return d, d.sort(1).values[:, :2]


def _check_against_brute(q, y, nb):
    d, top = _brute(q, y)
    np.testing.assert_allclose(np.asarray(nb.distances), top.numpy(), rtol=1e-6, atol=1e-6)
    idx = torch.as_tensor(np.asarray(nb.indices))
    assert bool((idx[:, 0] != idx[:, 1]).all())
    # the returned indices are at the returned distances (ties may pick any of the tied points)
    np.testing.assert_allclose(d.gather(1, idx).numpy(), top.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("budget", [2 ** 12, 2 ** 26])
def test_nearest_two_matches_brute_force_over_chunks(budget):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(700, 3, 4, 4, generator=g) * 2 - 1 + 3.0
    q = torch.rand(130, 3, 4, 4, generator=g) * 2 - 1 + 3.0
    nb = nearest_two(q, y, budget=budget, progress=False)
    _check_against_brute(q, y, nb)
    d, _ = _brute(q, y)
    np.testing.assert_array_equal(nb.indices, d.topk(2, largest=False).indices)    # no ties here


def test_ties_on_an_integer_grid():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (60, 4), generator=g).float()
    q = torch.randint(0, 3, (50, 4), generator=g).float()
    _check_against_brute(q, y, nearest_two(q, y, budget=2 ** 10, progress=False))


def test_duplicates_in_the_training_set_and_n_equal_two():
    y = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]])
    nb = nearest_two(torch.tensor([[0.0, 0.0]]), y, progress=False)
    assert sorted(nb.indices[0].tolist()) == [0, 2] and nb.distances[0].tolist() == [0.0, 0.0]
    res = replicates(torch.tensor([[0.0, 0.0]]), y, progress=False)     # d2 over distinct points: a replicate
    assert res.per_sample[0]["d2"] == pytest.approx(50 ** 0.5) and res.per_sample[0]["replicate"]
    assert res.summary[0]["train_duplicates"] == 1 and res.summary[0]["n_train"] == 2
    two = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    q = torch.tensor([[0.1, 0.0], [0.9, 0.0], [0.5, 3.0]])
    _check_against_brute(q, two, nearest_two(q, two, progress=False))


def test_feature_map_and_numpy_in_numpy_out():
    g = torch.Generator().manual_seed(2)
    y, q = torch.randn(50, 6, generator=g), torch.randn(9, 6, generator=g)
    proj = torch.randn(6, 3, generator=g)
    nb = nearest_two(q.numpy(), y, feature_map=lambda x: x @ proj, progress=False)
    assert isinstance(nb.distances, np.ndarray) and isinstance(nb.indices, np.ndarray)
    _check_against_brute(q @ proj, y @ proj, nb)


def test_ratio_criterion_on_near_copies_and_non_copies():
    g = torch.Generator().manual_seed(3)
    y = torch.rand(40, 3, 8, 8, generator=g) * 2 - 1
    copies = y[:10] + 0.01 * torch.randn(10, 3, 8, 8, generator=g)
    middles = 0.5 * (y[10:20] + y[20:30])                          # equidistant from two training images
    res = replicates(torch.cat([copies, middles]), y, progress=False)
    rep = res.per_sample.column("replicate")
    assert rep[:10].all() and not rep[10:].any()
    assert res.per_sample.column("nearest")[:10].tolist() == list(range(10))
    # a sample with d1/d2 = 0.4 replicates at threshold 1/2 but not at 1/3
    a, b = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    s = torch.tensor([[0.4 / 1.4, 0.0]])
    two = torch.cat([a, b])
    assert ratio(*nearest_two(s, two, progress=False).distances[0]) == pytest.approx(0.4)
    assert not replicates(s, two, progress=False).per_sample[0]["replicate"]
    assert replicates(s, two, threshold=0.5, progress=False).per_sample[0]["replicate"]


def test_replicate_counts_per_class_match_brute_force(tmp_path):
    g = torch.Generator().manual_seed(4)
    y = torch.rand(90, 12, generator=g)
    labels = torch.arange(90) % 3
    src = torch.randint(0, 30, (60,), generator=g)                # copies of 30 training points, some twice
    samples = torch.cat([y[src] + 1e-3 * torch.randn(60, 12, generator=g), torch.rand(40, 12, generator=g)])
    res = replicates(samples, y, train_labels=labels, n_boot=300, seed=1, tags={"model": "m"}, progress=False)
    d, top = _brute(samples, y)
    r = (top[:, 0] / top[:, 1]).numpy()
    rep = r < 1 / 3
    nn = d.argmin(1).numpy()
    lab = labels.numpy()[nn]
    rows = {row["group"]: row for row in res.summary}
    assert rows["all"]["replicate_fraction"] == pytest.approx(rep.mean())
    assert rows["all"]["train_replicated"] == len(set(nn[rep]))
    assert rows["all"]["train_replicated_fraction"] == pytest.approx(len(set(nn[rep])) / 90)
    for c in range(3):
        assert rows[c]["n_samples"] == int((lab == c).sum()) and rows[c]["n_train"] == 30
        assert rows[c]["replicate_fraction"] == pytest.approx(rep[lab == c].mean())
        assert rows[c]["train_replicated"] == len(set(nn[rep & (lab == c)]))
    for row in res.summary:
        assert row["model"] == "m"
        for col in ("replicate_fraction", "train_replicated", "train_replicated_fraction"):
            assert row[f"{col}_lo"] <= row[col] + 1e-12 and row[col] <= row[f"{col}_hi"] + 1e-12
    # per-class rows by the samples' own labels
    own = replicates(samples, y, train_labels=labels, sample_labels=np.zeros(100, int), n_boot=50, progress=False)
    assert {row["group"]: row["n_samples"] for row in own.summary} == {"all": 100, 0: 100, 1: 0, 2: 0}
    res.summary.to_csv(tmp_path / "summary.csv")


def test_bad_input():
    y = torch.randn(10, 4)
    with pytest.raises(ValueError, match="train"):
        nearest_two(torch.randn(3, 4), y[:1], progress=False)
    with pytest.raises(ValueError, match="queries"):
        nearest_two(torch.randn(3, 5), y, progress=False)
    with pytest.raises(ValueError, match="queries"):
        nearest_two(torch.randn(4), y, progress=False)
    with pytest.raises(TypeError, match="feature_map"):
        nearest_two(torch.randn(3, 4), y, feature_map=3, progress=False)
    with pytest.raises(ValueError, match="feature_map"):
        nearest_two(torch.randn(3, 4), y, feature_map=lambda x: x[:1], progress=False)
    with pytest.raises(ValueError, match="threshold"):
        replicates(torch.randn(3, 4), y, threshold=0, progress=False)
    with pytest.raises(ValueError, match="train_labels"):
        replicates(torch.randn(3, 4), y, train_labels=[0, 1], progress=False)
    with pytest.raises(ValueError, match="sample_labels"):
        replicates(torch.randn(3, 4), y, sample_labels=[0, 1, 2], progress=False)
    with pytest.raises(ValueError, match="NaN"):
        replicates(torch.full((3, 4), float("nan")), y, progress=False)


def test_replicates_of_duplicated_training_images_are_counted():
    """Samples on training images that appear 2 or 3 times replicate, exactly like samples on unique ones;
    the counts match a brute force over distinct points, and the duplicates found are reported."""
    from compare.replicates import distinct_points
    g = torch.Generator().manual_seed(5)
    base = torch.rand(30, 3, 4, 4, generator=g) * 2 - 1
    train = torch.cat([base, base[:6], base[:3], base[10:12] + 1e-4])       # 6 + 3 exact copies, 2 near copies
    perm = torch.randperm(len(train), generator=g)
    train, labels = train[perm], torch.arange(len(train))[perm] % 2
    rep = distinct_points(train, tol=1e-3)
    flat = train.reshape(len(train), -1).double()
    brute = [int(torch.nonzero(torch.cdist(flat[j:j + 1], flat)[0] <= 1e-3)[0]) for j in range(len(train))]
    np.testing.assert_array_equal(rep, brute)
    assert (rep != np.arange(len(train))).sum() == 11
    samples = torch.cat([base[:8] + 0.01 * torch.randn(8, 3, 4, 4, generator=g),         # on copied images
                         torch.rand(8, 3, 4, 4, generator=g) * 2 - 1])                  # far from all
    res = replicates(samples, train, duplicate_tol=1e-3, train_labels=labels, progress=False)
    keep = np.flatnonzero(rep == np.arange(len(train)))
    d = torch.cdist(samples.reshape(16, -1).double(), flat[keep]).sort(1).values
    expected = (d[:, 0] / d[:, 1] < 1 / 3).numpy()
    assert expected[:8].all() and not expected[8:].any()
    np.testing.assert_array_equal(res.per_sample.column("replicate").astype(bool), expected)
    top = res.summary[0]
    assert top["train_duplicates"] == 11 and top["n_train"] == 30
    assert top["replicate_fraction"] == pytest.approx(0.5) and top["train_replicated"] == 8
    assert sum(r["n_train"] for r in res.summary[1:]) == 30
    exact = replicates(samples, train, progress=False)                        # tol 0: the near copies stay apart
    assert exact.summary[0]["train_duplicates"] == 9
    with pytest.raises(ValueError, match="duplicate_tol"):
        replicates(samples, train, duplicate_tol=-1.0, progress=False)


@pytest.mark.parametrize("name", ["train_labels", "sample_labels"])
@pytest.mark.parametrize("kind", [np.float64, object])
def test_nan_labels_are_refused_naming_the_argument(name, kind):
    """A NaN label once made a class of its own (a row 'nan' with no samples); now it is refused."""
    y = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    labels = {"train_labels": np.arange(10) % 2, "sample_labels": np.arange(3) % 2}
    labels[name] = labels[name].astype(kind)
    labels[name][1] = np.nan
    with pytest.raises(ValueError, match=rf"^{name}: label 1 is NaN \(1 of {len(labels[name])}\)"):
        replicates(torch.randn(3, 4), y, n_boot=10, progress=False, **labels)
