"""Verdicts: conditions judged on intervals, combined into one word with the reason.

**The interval.** Every number a verdict reads comes with one kind of interval: the 95% percentile
interval of a two-level bootstrap (:mod:`compare.bootstrap`, ``clusters``). A replicate draws the seeds
(independent experiments: a training run with its own samples and noise) with replacement, then within
each drawn seed the units the number is computed from (points, samples, or runs at different sizes);
the estimate is the number computed on all units of all seeds. With 3 seeds the interval of a quantity
measured once per seed spans about the smallest to the largest seed's value: it cannot be narrower than
the seeds' disagreement.

**A condition** (:class:`Condition`) asks whether a number lies in a target region ``[low, high]`` (or, with
``strict``, the open region ``(low, high)``: "above 0" is then failed by an interval of exactly [0, 0]):

* ``pass``: its interval lies inside the region (an equivalence test, where the region is a tolerance
  around a point value such as a slope of 0);
* ``fail``: its interval lies entirely outside the region;
* ``inconclusive``: the interval straddles a boundary of the region, or is wider than ``max_width``
  (wider than the question allows: any answer would be noise);
* ``not measured``: the number could not be computed (NaN), e.g. too few runs memorized to fit a slope.

A comparison "A below B" is a condition on the difference ``A - B`` with its own interval (both from the same
bootstrap replicates), never on the overlap of two separate intervals.

**The verdict** (:func:`verdict`) of a claim's conditions, each marked main (the effect the claim is about)
or secondary:

* ``not run``: some condition could not be measured;
* ``not reproduced``: a main condition failed;
* ``inconclusive``: no main condition failed but one is inconclusive, or all main conditions passed and a
  secondary one is inconclusive;
* ``partial``: every main condition passed and a secondary one failed;
* ``reproduced``: every condition passed.

:func:`verdict` also returns one sentence that names the condition(s) the word rests on. A report turns a
claim whose negative control is judged ``reproduced`` into ``not testable here`` (:func:`controlled`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

VERDICTS = ("reproduced", "partial", "not reproduced", "inconclusive", "not run", "not testable here")
STATUSES = ("pass", "fail", "inconclusive", "not measured")


@dataclass(frozen=True)
class Condition:
    """One condition of a criterion: ``name`` (e.g. ``"(a)"``), ``text`` (what must hold, in words), the measured
    ``value`` with its interval ``[lo, hi]``, the target region ``[low, high]``, the widest interval that can
    still decide (``max_width``), and whether it is the claim's ``main`` effect (else secondary)."""

    name: str
    text: str
    value: float
    lo: float
    hi: float
    low: float = -math.inf
    high: float = math.inf
    max_width: float = math.inf
    main: bool = True
    strict: bool = False

    def __post_init__(self):
        for key in ("value", "lo", "hi", "low", "high", "max_width"):
            object.__setattr__(self, key, float(getattr(self, key)))
        if self.low > self.high:
            raise ValueError(f"condition {self.name}: target [low, high] = [{self.low}, {self.high}] is empty")
        if self.lo > self.hi:
            raise ValueError(f"condition {self.name}: interval lo, hi = [{self.lo}, {self.hi}] has lo > hi")

    @property
    def status(self) -> str:
        """``pass``, ``fail``, ``inconclusive`` or ``not measured`` (module doc)."""
        if any(math.isnan(v) for v in (self.value, self.lo, self.hi)):
            return "not measured"
        if self.hi - self.lo > self.max_width:
            return "inconclusive"
        inside = (self.low < self.lo and self.hi < self.high) if self.strict else (self.low <= self.lo and
                                                                                   self.hi <= self.high)
        if inside:
            return "pass"
        outside = (self.hi <= self.low or self.lo >= self.high) if self.strict else (self.hi < self.low or
                                                                                     self.lo > self.high)
        return "fail" if outside else "inconclusive"

    def target(self) -> str:
        """The target region in words: ``in [a, b]`` (open: ``in (a, b)``), ``<= b`` or ``>= a`` (open: ``<``,
        ``>``), and the width limit, if any."""
        lo, hi = self.low, self.high
        op = "" if self.strict else "="
        text = (f"in {'(' if self.strict else '['}{lo:.3g}, {hi:.3g}{')' if self.strict else ']'}"
                if math.isfinite(lo) and math.isfinite(hi) else
                f"<{op} {hi:.3g}" if math.isfinite(hi) else f">{op} {lo:.3g}" if math.isfinite(lo) else "any")
        return text + (f", interval narrower than {self.max_width:.3g}" if math.isfinite(self.max_width) else "")

    def row(self) -> dict:
        """Every field, the status and the target in words (for ``outcome.json``)."""
        return asdict(self) | {"status": self.status, "target": self.target()}


def from_row(row: dict) -> Condition:
    """The :class:`Condition` written by :meth:`Condition.row`."""
    return Condition(**{k: row[k] for k in Condition.__dataclass_fields__})


def _names(conds) -> str:
    return ", ".join(f"{c.name} {c.text}" for c in conds)


def verdict(conditions) -> tuple[str, str]:
    """``(word, reason)`` of a claim's conditions (module doc)."""
    conds = list(conditions)
    if not conds:
        return "not run", "no condition was measured"
    by = {s: [c for c in conds if c.status == s] for s in STATUSES}
    main = [c for c in conds if c.main]
    if by["not measured"]:
        return "not run", f"could not be measured: {_names(by['not measured'])}"
    failed_main = [c for c in by["fail"] if c.main]
    if failed_main:
        return "not reproduced", f"the main effect failed: {_names(failed_main)}"
    open_main = [c for c in by["inconclusive"] if c.main]
    if open_main:
        return "inconclusive", f"the data cannot decide the main effect: {_names(open_main)}"
    if by["fail"]:
        return "partial", (f"the main effect holds ({_names(main)}) but a secondary condition failed: "
                           f"{_names(by['fail'])}")
    if by["inconclusive"]:
        return "inconclusive", (f"the main effect holds ({_names(main)}) but the data cannot decide: "
                                f"{_names(by['inconclusive'])}")
    return "reproduced", f"every condition passed ({', '.join(c.name for c in conds)})"


def controlled(word: str, reason: str, negative: str | None, positive: str | None) -> tuple[str, str]:
    """The claim's verdict given its controls' verdict words: ``not testable here`` when the negative control
    (a model for which the claim must fail) is judged ``reproduced``; otherwise the claim's own verdict, with
    a note when the positive control (for which it must hold) was not reproduced."""
    if negative == "reproduced":
        return "not testable here", ("the negative control is also judged reproduced, so this criterion does not "
                                     f"tell a model with the effect from one without (claim alone: {word}; {reason})")
    if positive is not None and positive != "reproduced":
        return word, f"{reason}; note: the positive control was judged {positive}, so the criterion may miss the effect"
    return word, reason
