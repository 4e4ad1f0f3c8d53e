"""``python -m coldsnap._runtime``: the process the engine starts in each container."""

import sys

from coldsnap._runtime.lifecycle import main

if __name__ == "__main__":
    sys.exit(main())
