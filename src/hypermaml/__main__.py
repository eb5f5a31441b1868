"""``python -m hypermaml``: the ``hypermaml`` command."""

import sys

from .cli import main

sys.exit(main())
