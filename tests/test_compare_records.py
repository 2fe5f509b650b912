"""Tidy records (CSV round trip, group summaries) and the bootstrap helper, against numpy references."""
import numpy as np
import pytest

from compare.bootstrap import bootstrap, mean_interval, resample_weights, weighted_mean
from compare.records import Records, read_csv, summarize


def test_csv_round_trip_keeps_types_and_missing_cells(tmp_path):
    rows = Records([
        {"model": "optimal", "sigma": 0.1 + 0.2, "n": 3, "flag": True, "note": None},
        {"model": "smoothed", "sigma": 1e-300, "n": -7, "flag": False, "extra": 2.5},
    ])
    back = read_csv(rows.to_csv(tmp_path / "t.csv"))
    assert back.columns() == ["model", "sigma", "n", "flag", "note", "extra"]
    assert back[0] == {**rows[0], "extra": None}
    assert back[1] == {**rows[1], "note": None}
    assert back[0]["sigma"] == 0.1 + 0.2                     # floats are written exactly


def test_where_column_and_concatenation():
    a = Records([{"m": "a", "v": 1.0}, {"m": "b", "v": 2.0}])
    both = a + [{"m": "a", "v": 3.0}]
    assert isinstance(both, Records)
    np.testing.assert_array_equal(both.where(m="a").column("v"), [1.0, 3.0])
    with pytest.raises(ValueError, match="no column"):
        a.column("w")


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=60)
    rows = Records({"g": i % 3, "v": float(v)} for i, v in enumerate(vals))
    rows.append({"g": 0, "v": None})                       # missing values are left out
    out = summarize(rows, "g", "v")
    for row in out:
        sel = vals[np.arange(60) % 3 == row["g"]]
        assert row["v_mean"] == pytest.approx(sel.mean())
        assert row["v_q25"] == pytest.approx(np.quantile(sel, 0.25))
        assert row["v_q50"] == pytest.approx(np.median(sel))
    with pytest.raises(ValueError, match="no column"):
        summarize(rows, "h", "v")


def test_to_pandas_is_the_same_table(monkeypatch):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    rows = Records({"g": i % 3, "v": float(v)} for i, v in enumerate(rng.normal(size=30)))
    rows.append({"g": 1, "v": 0.5, "note": "late column"})
    df = rows.to_pandas()
    assert list(df.columns) == rows.columns() and len(df) == len(rows)
    np.testing.assert_array_equal(df["v"].to_numpy(), rows.column("v").astype(float))
    assert df["note"].isna().sum() == 30 and df["note"].iloc[-1] == "late column"
    means = df.groupby("g")["v"].mean()                    # pandas' group means are summarize's
    for row in summarize(rows, "g", "v"):
        assert means[row["g"]] == pytest.approx(row["v_mean"], rel=1e-12)
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        rows.to_pandas()


def test_read_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="path"):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_csv(tmp_path / "empty.csv")


def test_resample_weights_are_multiplicities():
    w = resample_weights(7, 500, np.random.default_rng(1))
    assert w.shape == (500, 7)
    np.testing.assert_array_equal(w.sum(1), 7)
    assert abs(w.mean() - 1) < 0.05                          # each point drawn once on average
    v = np.arange(7.0)
    np.testing.assert_allclose(weighted_mean(w[:3], v), [np.repeat(v, w[k].astype(int)).mean() for k in range(3)])


def test_mean_interval_matches_normal_theory():
    x = np.random.default_rng(2).normal(size=400)
    est, lo, hi = mean_interval(x, n_boot=4000, seed=3)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert est == pytest.approx(x.mean())
    assert hi - lo == pytest.approx(2 * 1.959964 * se, rel=0.1)
    assert lo < est < hi


def test_two_sample_bootstrap_is_seeded_and_independent_per_sample():
    a, b = np.random.default_rng(4).normal(size=(2, 300))
    stat = lambda wa, wb: weighted_mean(wb, b + 1) - weighted_mean(wa, a)       # noqa: E731
    one, two = bootstrap(stat, 300, 300, seed=5), bootstrap(stat, 300, 300, seed=5)
    assert one == two
    est, lo, hi = one
    se = np.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 300)
    assert hi - lo == pytest.approx(2 * 1.959964 * se, rel=0.15)
    assert bootstrap(stat, 300, 300, seed=6)[1] != lo


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_boot"):
        mean_interval(np.ones(3), n_boot=0)
    with pytest.raises(ValueError, match="level"):
        mean_interval(np.ones(3), level=1.0)
    with pytest.raises(ValueError, match="values"):
        mean_interval(np.ones(0))
