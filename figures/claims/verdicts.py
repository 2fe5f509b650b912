"""Verdict rules: small pure functions from measured intervals to ``reproduced`` / ``partial`` / ``not reproduced``.

A claim's criterion is a list of conditions, each scored by :func:`interval_check` on a measured
interval ``[lo, hi]`` against a target range ``[low, high]``:

* 1 when the interval meets the target: it overlaps it (``strict=False``), or lies inside it (``strict=True``);
* 0.5 when ``strict`` and the interval straddles a boundary of the target (the data cannot decide);
* 0 when the interval misses the target; ``None`` when the quantity was not measured (NaN bounds).

:func:`verdict` combines the scores: all 1 -> ``reproduced``; all 0 -> ``not reproduced``; any mix
-> ``partial``; nothing measured -> ``not run``.
"""
from __future__ import annotations

import math

VERDICTS = ("reproduced", "partial", "not reproduced", "not run")


def interval_check(lo: float, hi: float, *, low: float = -math.inf, high: float = math.inf,
                   strict: bool = False) -> float | None:
    """Score of the interval ``[lo, hi]`` against the target ``[low, high]`` (module doc)."""
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        return None
    if lo > hi:
        raise ValueError(f"lo, hi: expected lo <= hi, got [{lo}, {hi}]")
    if hi < low or lo > high:
        return 0.0
    if not strict or (low <= lo and hi <= high):
        return 1.0
    return 0.5


def verdict(scores) -> str:
    """Combine condition scores (1, 0.5, 0 or None) into a verdict word (module doc)."""
    scores = list(scores)
    measured = [float(s) for s in scores if s is not None]
    if not measured:
        return "not run"
    if all(s == 1 for s in measured) and len(measured) == len(scores):
        return "reproduced"
    if all(s == 0 for s in measured):
        return "not reproduced"
    return "partial"


def below(a_hi: float, b_lo: float) -> float | None:
    """1 when the interval of ``a`` lies entirely below that of ``b`` (``a_hi < b_lo``), else 0 (None if NaN)."""
    if math.isnan(float(a_hi)) or math.isnan(float(b_lo)):
        return None
    return 1.0 if float(a_hi) < float(b_lo) else 0.0
