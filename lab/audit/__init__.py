"""The audit of a model: is it memorizing, and where? (``memgen audit``, :mod:`lab.commands.audit`).

:mod:`.inputs` reads the model (a memgen run folder, a local diffusers folder or ``module:factory``) and the
data; :mod:`.report` measures them and writes the report (its figure: :mod:`figures.memorization_panels`).
docs/own_model.md is the guide.
"""
from .inputs import AuditData, load_data, load_model
from .report import AuditSettings, audit

__all__ = ["audit", "AuditSettings", "AuditData", "load_data", "load_model"]
