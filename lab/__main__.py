"""``python -m lab`` is the ``memgen`` command (e.g. under ``torchrun -m lab train ...``)."""
import sys

from .cli import main

sys.exit(main())
