"""``python -m coldsnap._runtime.run_function FILE NAME ARGS``: ``Image.run_function``'s step.

The image builder runs this inside a build container of the image so far: it
imports ``FILE`` (the file that defines the function, as the client had it),
calls its global function ``NAME`` with the arguments pickled in ``ARGS``, and
exits; whatever the function wrote becomes the image's next layer. Exit 1 with
the traceback on failure.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from coldsnap import user_code
from coldsnap.user_code import run_maybe_async
from coldsnap.wire.serialization import loads_args


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m coldsnap._runtime.run_function FILE NAME ARGS", file=sys.stderr)
        return 2
    file, name, args_file = Path(argv[0]), argv[1], Path(argv[2])
    try:
        module = user_code.import_app_file(file)
        function = getattr(module, name, None)
        function = getattr(function, "raw_f", None) or function  # an @app.function's own
        if not callable(function):
            print(f"coldsnap: {file.name} defines no function {name!r}", file=sys.stderr)
            return 1
        _, args, kwargs = loads_args(args_file.read_bytes())
        print(f"coldsnap: running {name}() of {file.name}", flush=True)
        run_maybe_async(function(*args, **kwargs))
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
