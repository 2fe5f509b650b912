"""Yoon et al.'s synthetic images: the construction rules, their statistics, seeds, mixtures, splits, errors."""
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from memgen.data import Dataset, Split, gm_dummies, load, mixture, mondrian, mondrian_bar_width, random_ink


@pytest.mark.parametrize("size,seed,bar_width", [(32, 0, None), (8, 1, None), (17, 2, 3), (4, 3, 1), (64, 4, None)])
def test_mondrian_follows_its_construction(size, seed, bar_width):
    ds = mondrian(40, size=size, seed=seed, bar_width=bar_width)
    x, w = ds.x.numpy().astype(np.float64), ds.truth["bar_width"]
    assert ds.x.shape == (40, 3, size, size) and ds.x.dtype == torch.float32
    assert w == (bar_width or max(1, size // 8))
    assert x.min() >= -1 and x.max() <= 1
    for img, r, c in zip(x, ds.truth["bar_row"].tolist(), ds.truth["bar_col"].tolist()):
        assert 1 <= r <= size - w - 1 and 1 <= c <= size - w - 1
        quads = [img[:, :r, :c], img[:, :r, c + w:], img[:, r + w:, :c], img[:, r + w:, c + w:]]
        colours = [q.reshape(3, -1) for q in quads]
        for q in colours:
            assert q.size and (q == q[:, :1]).all()                  # one colour per quadrant
        assert len({tuple(q[:, 0]) for q in colours}) == 4           # four independent colours
        cross = np.concatenate([img[:, r:r + w, :].reshape(3, -1), img[:, :, c:c + w].reshape(3, -1)], 1)
        assert len(np.unique(cross)) > cross.size // 2              # i.i.d. continuous pixels on the cross


def test_mondrian_statistics():
    ds = mondrian(3000, size=16, seed=5)
    w = mondrian_bar_width(16)
    x = ds.x.numpy().astype(np.float64)
    # quadrant colours and cross pixels are U[-1, 1]: Kolmogorov-Smirnov against the uniform law
    tl = x[:, :, 0, 0].ravel()
    assert stats.kstest(tl, stats.uniform(-1, 2).cdf).pvalue > 1e-3
    r, c = ds.truth["bar_row"].numpy(), ds.truth["bar_col"].numpy()
    on_cross = x[np.arange(3000), 0, r, 0]
    assert stats.kstest(on_cross, stats.uniform(-1, 2).cdf).pvalue > 1e-3
    # bar positions uniform on {1, ..., size - w - 1}
    counts = np.bincount(r, minlength=16 - w)[1:]
    assert len(counts) == 16 - w - 1 and stats.chisquare(counts).pvalue > 1e-3
    assert set(np.unique(c)) == set(range(1, 16 - w))


def test_gm_dummies_statistics():
    std, n = 0.5, 400
    ds = gm_dummies(n, size=8, seed=3, n_templates=7, std=std, template_seed=11)
    t = ds.truth["templates"].numpy().astype(np.float64)
    k = ds.truth["component"].numpy()
    x = ds.x.numpy().astype(np.float64)
    assert t.shape == (7, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    # templates are i.i.d. uniform and fixed by template_seed only
    assert stats.kstest(t.ravel(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    other = gm_dummies(5, size=8, seed=99, n_templates=7, std=std, template_seed=11)
    assert torch.equal(other.truth["templates"], ds.truth["templates"])
    # each image lies nearest to its own template
    d2 = ((x[:, None] - t[None]) ** 2).reshape(n, 7, -1).sum(-1)
    assert (d2.argmin(1) == k).all()
    # clipped fraction: P(u + std z < 0) + P(u + std z > 1), u ~ U[0, 1], integrated
    p_clip = 2 * integrate.quad(lambda u: stats.norm.cdf(-u / std), 0, 1)[0]
    frac = float((np.abs(x) == 1).mean())
    assert abs(frac - p_clip) < 4 * np.sqrt(p_clip * (1 - p_clip) / x.size)
    # unclipped residuals in [0, 1] units are N(0, std^2) truncated to the unit box: compare with u fixed
    u, v = (t[k] + 1) / 2, (x + 1) / 2
    inside = (v > 0) & (v < 1)
    z = (v - u)[inside]
    lo, hi = -u[inside] / std, (1 - u[inside]) / std
    mean_ref = std * (stats.norm.pdf(lo) - stats.norm.pdf(hi)) / (stats.norm.cdf(hi) - stats.norm.cdf(lo))
    assert abs((z - mean_ref).mean()) < 4 * std / np.sqrt(z.size)


def test_random_ink_is_fair_coins():
    x = random_ink(300, size=16, seed=2).x.numpy()
    assert set(np.unique(x)) == {-1.0, 1.0}
    p = float((x == 1).mean())
    assert abs(p - 0.5) < 4 * 0.5 / np.sqrt(x.size)
    # neighbouring values independent: agreement rate of adjacent channel values is 1/2
    agree = float((x[:, :, :, 1:] == x[:, :, :, :-1]).mean())
    assert abs(agree - 0.5) < 4 * 0.5 / np.sqrt(x[:, :, :, 1:].size)


@pytest.mark.parametrize("loader", [mondrian, gm_dummies, random_ink])
def test_same_seed_same_data_and_rebuild_from_params(loader):
    a, b, c = loader(30, size=12, seed=7), loader(30, size=12, seed=7), loader(30, size=12, seed=8)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    again = load(a.name, **a.params)
    assert torch.equal(again.x, a.x)
    assert a.classes == [a.name] and (a.labels == 0).all()


def test_all_train_by_default_and_seeded_splits():
    ds = random_ink(10, size=4)
    assert ds.split.train.tolist() == list(range(10)) and ds.val.shape == (0, 3, 4, 4)
    assert ds.val_labels.shape == (0,)
    assert Split.from_dict(ds.split.to_dict()).val.size == 0
    ds = mondrian(50, size=8, seed=1, n_train=35)
    tr, va = ds.split.train, ds.split.val
    assert len(tr) == 35 and len(va) == 15 and sorted(set(tr) | set(va)) == list(range(50))
    assert torch.equal(ds.train, ds.x[torch.as_tensor(tr)])
    assert np.array_equal(mondrian(50, size=8, seed=1, n_train=35).split.val, va)


def test_mixture_labels_classes_and_parts():
    ds = mixture({"mondrian": 30, "random_ink": 10}, size=8, seed=4, n_train=32)
    assert ds.classes == ["mondrian", "random_ink"] and ds.x.shape == (40, 3, 8, 8)
    assert ds.labels.tolist() == [0] * 30 + [1] * 10
    assert set(np.unique(ds.x[30:].numpy())) == {-1.0, 1.0}
    assert len(np.unique(ds.x[:30].numpy())) > 1000                # continuous Mondrian pixels
    assert len(ds.split.train) == 32 and len(ds.split.val) == 8
    same = mixture([("mondrian", 30), ("random_ink", 10)], size=8, seed=4, n_train=32)
    assert torch.equal(same.x, ds.x) and np.array_equal(same.split.train, ds.split.train)
    assert not torch.equal(mixture({"mondrian": 30, "random_ink": 10}, size=8, seed=5).x, ds.x)
    assert torch.equal(load("mixture", **ds.params).x, ds.x)
    # a ready Dataset joins as it is
    cars = Dataset("cars", torch.zeros(5, 3, 8, 8), Split(np.arange(5), np.arange(0), "first"))
    mix = mixture({"car": cars, "gm_dummies": 7}, size=8)
    assert torch.equal(mix.x[:5], cars.x) and mix.labels.tolist() == [0] * 5 + [1] * 7
    assert mix.classes == ["car", "gm_dummies"]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="n:"):
        mondrian(0)
    with pytest.raises(ValueError, match="size"):
        mondrian(5, size=2)
    with pytest.raises(ValueError, match="bar_width"):
        mondrian(5, size=8, bar_width=7)
    with pytest.raises(ValueError, match="std"):
        gm_dummies(5, std=-1)
    with pytest.raises(ValueError, match="n_templates"):
        gm_dummies(5, n_templates=0)
    with pytest.raises(ValueError, match="n_train"):
        random_ink(5, n_train=6)
    with pytest.raises(ValueError, match="parts"):
        mixture({"unicorns": 5})
    with pytest.raises(ValueError, match="parts"):
        mixture([("mondrian", 5), ("mondrian", 3)])
    with pytest.raises(ValueError, match="parts"):
        mixture({})
    cars = Dataset("cars", torch.zeros(5, 3, 4, 4), Split(np.arange(5), np.arange(0), "first"))
    with pytest.raises(ValueError, match="same image shape"):
        mixture({"car": cars, "mondrian": 3}, size=8)
