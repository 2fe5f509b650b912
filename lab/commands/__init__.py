"""One module per ``memgen`` sub-command, named for it; each defines ``register(subparsers)`` (:mod:`lab.cli`)."""
