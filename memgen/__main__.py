"""``python -m memgen`` is the ``memgen`` command."""
import sys

from .cli import main

sys.exit(main())
