"""scikit-learn's digits as a memgen data set: the pixels, labels and split against sklearn's own arrays."""
import numpy as np
import pytest
import torch

import memgen.data

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_digits_match_sklearn_and_split():
    raw = sklearn_datasets.load_digits()
    ds = memgen.data.load("digits")
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == torch.float32
    np.testing.assert_allclose(ds.x.reshape(1797, 64).numpy(), raw.data / 8.0 - 1.0, rtol=0, atol=1e-7)
    assert float(ds.x.min()) == -1.0 and float(ds.x.max()) == 1.0
    np.testing.assert_array_equal(ds.labels.numpy(), raw.target)
    assert len(ds.split.train) == 1797 and len(ds.split.val) == 0
    sub = memgen.data.digits(300, n_train=200, seed=3, classes=[1, 7])
    assert set(sub.labels.tolist()) == {1, 7} and len(sub.x) == 300
    assert len(sub.split.train) == 200 and len(np.intersect1d(sub.split.train, sub.split.val)) == 0
    first = raw.data[np.isin(raw.target, [1, 7])][:300] / 8.0 - 1.0
    np.testing.assert_allclose(sub.x.reshape(300, 64).numpy(), first, atol=1e-7)
    again = memgen.data.digits(300, n_train=200, seed=3, classes=[1, 7])
    np.testing.assert_array_equal(again.split.train, sub.split.train)
    assert sub.describe()["params"]["classes"] == [1, 7]


def test_digits_bad_input():
    with pytest.raises(ValueError, match="n:"):
        memgen.data.digits(5000)
    with pytest.raises(ValueError, match="classes"):
        memgen.data.digits(classes=[11])
