"""``python -m tcp_core``: the ``tcp-core`` command (serve, soak, probe, console)."""

import sys

from .cli import main

sys.exit(main())
