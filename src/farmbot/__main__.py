"""``python -m farmbot`` is the ``farmbot`` command."""

import sys

from farmbot.cli import main

sys.exit(main())
