"""``python -m pneumoclf.cli``: the same as the ``pneumoclf`` command."""

import sys

from . import main

sys.exit(main())
