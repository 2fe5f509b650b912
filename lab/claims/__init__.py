"""The twelve claims of the four papers, each a :class:`~lab.claims.base.Claim` with a computed verdict.

``CLAIMS`` maps the claim number to its claim: 1-4 Kaiser & Kollmann (:mod:`.kaiser`), 5-7 Bonnaire et al.
(:mod:`.bonnaire`), 8-10 Yoon et al. (:mod:`.yoon`), 11-12 Marion & Wu (:mod:`.marion`). Each module's
docstring states the criteria, fixed before any run. ``memgen report`` (:mod:`.report`) runs them.
``CLAIMS`` is imported on first use (:mod:`.registry`), so that ``memgen --help`` stays fast.
"""


def __getattr__(name):
    if name == "CLAIMS":
        from .registry import CLAIMS
        return CLAIMS
    raise AttributeError(f"module 'lab.claims' has no attribute {name!r}")
