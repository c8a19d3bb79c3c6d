"""``python -m pneumoclf.cli``: the same as the ``pneumoclf`` command."""

import sys

from . import console_main

sys.exit(console_main())
