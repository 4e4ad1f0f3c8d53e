"""``python -m coldsnap._runtime.build APP_FILE TAG``: run a class's ``@build()`` methods.

The image builder runs this inside the build container (with
``COLDSNAP_CONTAINER_ID`` set, so ``image.imports()`` is strict); what the
methods write becomes part of the image. Exit 1 with the traceback on failure.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from coldsnap import user_code
from coldsnap._runtime.target import Target
from coldsnap.markers import MarkerFlag
from coldsnap.user_code import run_maybe_async


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m coldsnap._runtime.build APP_FILE TAG", file=sys.stderr)
        return 2
    app_file, tag = Path(argv[0]), argv[1]
    try:
        module = user_code.import_app_file(app_file)
        target = Target(user_code.find_handle(user_code.find_app(module), tag))
        target.instantiate()
        for label, hook in target.hooks(MarkerFlag.BUILD):
            print(f"coldsnap: running {label}", flush=True)
            run_maybe_async(hook())
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
