"""``CLAIMS``: claim number -> :class:`~lab.claims.base.Claim`, gathered from the four paper modules."""
from __future__ import annotations

from . import bonnaire, kaiser, marion, yoon

CLAIMS = {c.number: c for module in (kaiser, bonnaire, yoon, marion) for c in module.CLAIMS}
