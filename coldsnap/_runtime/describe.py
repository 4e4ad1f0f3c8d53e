"""``python -m coldsnap._runtime.describe APP_FILE``: what an app file defines, as JSON.

The server runs this to learn an app's functions, classes, options and image
before deploying it (see docs/protocol.md). An import error exits 1 with the
traceback on stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from coldsnap._runtime import loader
from coldsnap.app import App
from coldsnap.image import Image
from coldsnap.partial import _PartialFlag, find_partials


def describe_app(app: App) -> dict[str, Any]:
    """The JSON-able description of ``app``."""
    image = app.image or Image.from_host()
    functions: dict[str, Any] = {}
    for tag, function in app.registered_functions.items():
        assert function.options is not None
        functions[tag] = {"kind": "function", "options": function.options.to_dict()}
    for tag, cls in app.registered_classes.items():
        assert cls.options is not None and cls.user_cls is not None
        functions[tag] = {
            "kind": "cls",
            "options": cls.options.to_dict(),
            "methods": list(find_partials(cls.user_cls, _PartialFlag.METHOD)),
            "build_methods": list(find_partials(cls.user_cls, _PartialFlag.BUILD)),
        }
    return {
        "app": app.name,
        "image": {"hash": image.hash, "spec": image.to_dict()},
        "functions": functions,
        "entrypoints": list(app.registered_entrypoints),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m coldsnap._runtime.describe APP_FILE", file=sys.stderr)
        return 2
    try:
        # stdout carries the JSON only: an app that prints at import time prints to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            module = loader.import_app_file(Path(argv[0]))
            description = describe_app(loader.find_app(module))
    except Exception:
        traceback.print_exc()
        return 1
    json.dump(description, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
