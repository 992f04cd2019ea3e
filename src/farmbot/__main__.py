"""``python -m farmbot`` is the ``farmbot`` command."""

import sys

from farmbot.entry import main

sys.exit(main())
