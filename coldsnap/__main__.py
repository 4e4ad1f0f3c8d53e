"""``python -m coldsnap``: the ``coldsnap`` command, for where the script is not on PATH."""

import sys

from coldsnap.cli.main import main

sys.exit(main())
