"""Settings shared by the figure scripts: named scales with overrides."""
from __future__ import annotations


def scale_settings(scales: dict, scale: str, changes: dict) -> dict:
    """A copy of ``scales[scale]`` (a figure's settings at one scale) with ``changes`` applied (unknown names raise)."""
    if scale not in scales:
        raise ValueError(f"scale: expected one of {sorted(scales)}, got {scale!r}")
    s = dict(scales[scale])
    unknown = sorted(set(changes) - set(s))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a setting of the figure; expected one of {sorted(s)}")
    s.update(changes)
    return s
