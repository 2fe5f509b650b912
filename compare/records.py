"""Tidy records: every metric returns a table with one row per observation (a list of dicts).

A :class:`Records` is a plain ``list`` of ``dict`` rows (one column per key), so it can be filtered,
concatenated and iterated like any list, saved with :meth:`Records.to_csv` (atomically; the one CSV
writer of the project) and read back with :func:`read_csv`. :func:`summarize` groups rows and reports
mean, median and quartiles of chosen columns (what a figure plots). :meth:`Records.to_pandas` gives the
same table as a :class:`pandas.DataFrame` for joins, pivots and plotting.

Why a list of dicts and not DataFrames: the metrics and the package core stay free of a pandas
dependency (pandas is the optional extra ``memgen[pandas]``), rows may carry nested values (per-sigma
lists, per-class tables) that a JSON line holds as they are, and a list converts to a DataFrame in
one call where a researcher wants one.

CSV cells round-trip as: ``None`` <-> empty cell, ``True``/``False``, ``int``, ``float`` (written with
``repr``, so floats are exact), anything else as text.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from memgen.run_files import atomic_write_text


class Records(list):
    """A table as a list of dict rows; columns are the union of the rows' keys in first-seen order."""

    def __add__(self, other) -> "Records":
        return Records(list.__add__(self, list(other)))

    def columns(self) -> list[str]:
        """Column names, in the order they first appear."""
        seen = {}
        for row in self:
            for key in row:
                seen.setdefault(key, None)
        return list(seen)

    def column(self, name: str) -> np.ndarray:
        """The values of one column as a numpy array (``None`` where a row lacks it)."""
        if name not in self.columns():
            raise ValueError(f"name: no column {name!r}; the columns are {self.columns()}")
        return np.asarray([row.get(name) for row in self])

    def where(self, **equal) -> "Records":
        """Rows whose columns equal the given values, e.g. ``records.where(model='optimal', delta=1.6)``."""
        return Records(row for row in self if all(row.get(k) == v for k, v in equal.items()))

    def to_pandas(self):
        """The table as a :class:`pandas.DataFrame` (columns in first-seen order; a missing cell is ``None``/NaN).

        pandas is an optional dependency (``pip install pandas`` or ``pip install memgen[pandas]``),
        imported only here.
        """
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("Records.to_pandas needs pandas: pip install pandas (or memgen[pandas])") from e
        return pd.DataFrame.from_records(list(self), columns=self.columns())

    def to_csv(self, path) -> Path:
        """Write the table to ``path`` as CSV (atomically, header first); returns the path."""
        cols = self.columns()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for row in self:
            writer.writerow([_cell(row.get(c)) for c in cols])
        return atomic_write_text(path, buf.getvalue())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _parse(text: str):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv(path) -> Records:
    """Read a table written by :meth:`Records.to_csv` (empty cells become ``None`` and are kept as keys)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: no such file {str(path)!r}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"path: {str(path)!r} is empty (no header row)")
        return Records({k: _parse(v) for k, v in zip(header, line)} for line in reader)


def summarize(records, by, values, *, quantiles=(0.25, 0.5, 0.75)) -> Records:
    """Group rows by the columns ``by`` and report, per group, ``n`` and for each column in ``values``
    its mean and the requested quantiles (named ``{value}_q25``, ``{value}_q50``, ...).

    Rows where a value is ``None`` or NaN are left out of that value's statistics.
    """
    by = [by] if isinstance(by, str) else list(by)
    values = [values] if isinstance(values, str) else list(values)
    records = Records(records)
    cols = records.columns()
    for name in by + values:
        if name not in cols:
            raise ValueError(f"no column {name!r} to summarize; the columns are {cols}")
    groups: dict = {}
    for row in records:
        groups.setdefault(tuple(row.get(k) for k in by), []).append(row)
    out = Records()
    for key, rows in groups.items():
        summary = dict(zip(by, key))
        summary["n"] = len(rows)
        for v in values:
            arr = np.asarray([np.nan if r.get(v) is None else float(r[v]) for r in rows], dtype=np.float64)
            arr = arr[~np.isnan(arr)]
            summary[f"{v}_mean"] = float(arr.mean()) if arr.size else None
            for q in quantiles:
                summary[f"{v}_q{round(100 * q):02d}"] = float(np.quantile(arr, q)) if arr.size else None
        out.append(summary)
    return out
