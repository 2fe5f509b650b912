"""The application layer: the ``memgen`` command (:mod:`lab.cli`, :mod:`lab.commands`), the claims report
(:mod:`lab.claims`), the audit of a model (:mod:`lab.audit`) and the training-metric registry
(:mod:`lab.run_metrics`). It may import every other package; none of them imports it."""
