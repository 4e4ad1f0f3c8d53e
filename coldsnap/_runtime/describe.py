"""``python -m coldsnap._runtime.describe APP_FILE [APP_DIR]``: what an app file defines, as JSON.

The server runs this to learn an app's functions, classes, options and image
before deploying it (see docs/protocol.md). An import error exits 1 with the
traceback on stderr.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coldsnap import user_code
from coldsnap.app import App
from coldsnap.image import Image
from coldsnap.markers import MarkerFlag, find_partials
from coldsnap.wire.description import (
    CLS,
    FUNCTION,
    INLINE_SECRETS,
    AppDescription,
    FunctionDescription,
)


def describe_app(app: App, module: str = "app", local_modules: Sequence[str] = ()
                 ) -> AppDescription:
    """What ``app`` defines; ``module``: the name its file was imported under;
    ``local_modules`` go into its image."""
    def with_modules(image: Image) -> Image:
        return image.add_local_python_source(*local_modules) if local_modules else image

    image = with_modules(app.image or Image.debian_slim())  # Modal's default
    own = {tag: with_modules(own_image).spec for tag, own_image in app.images.items()}
    functions: dict[str, FunctionDescription] = {}
    for tag, function in app.registered_functions.items():
        assert function.options is not None
        functions[tag] = FunctionDescription(FUNCTION, function.options,
                                             image_spec=own.get(tag), web=function.web,
                                             cloud_options=app.cloud_options.get(tag, {}))
    for tag, cls in app.registered_classes.items():
        assert cls.options is not None and cls.user_cls is not None
        functions[tag] = FunctionDescription(
            CLS, cls.options,
            methods=tuple(find_partials(cls.user_cls, MarkerFlag.METHOD)),
            build_methods=tuple(find_partials(cls.user_cls, MarkerFlag.BUILD)),
            image_spec=own.get(tag),
            web=cls.web_endpoints(),
            cloud_options=app.cloud_options.get(tag, {}),
        )
    return AppDescription(name=app.name, image_hash=image.hash, image_spec=image.spec,
                          functions=functions, entrypoints=tuple(app.registered_entrypoints),
                          module=module, default_image=app.image is None)


def modules_from(directory: Path, names: set[str], search_path: list[str]) -> list[str]:
    """Of the top-level modules ``names``, those imported from ``directory`` that
    nothing else on ``search_path`` provides: the app's own helper modules. One
    that is also installed (a ``utils.py`` beside an installed ``utils``) is left
    to the installed one, which the container has too."""
    found = []
    for name in sorted(names):
        origin = getattr(sys.modules.get(name), "__file__", None)
        if origin is None:  # its import failed here (``with image.imports():``)
            spec = importlib.machinery.PathFinder.find_spec(name, [str(directory)])
            origin = spec.origin if spec is not None else None
        if origin is None or not Path(origin).resolve().is_relative_to(directory):
            continue
        if importlib.machinery.PathFinder.find_spec(name, search_path) is None:
            found.append(name)
    return found


class ImportsSeen:
    """A finder that only watches: the top-level modules something tried to import,
    including those whose import then failed (a helper module imported ``with
    image.imports():`` whose own packages the host lacks)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if path is None:
            self.names.add(fullname.partition(".")[0])


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m coldsnap._runtime.describe APP_FILE [APP_DIR]", file=sys.stderr)
        return 2
    app_file = Path(argv[0]).resolve()
    # APP_DIR: where the deployed file lives; the modules it imports from there
    # (helpers.py next to it) go into the image with it.
    app_dir = Path(argv[1]).resolve() if len(argv) == 2 else None
    elsewhere = list(sys.path)  # where modules come from when not from APP_DIR
    if app_dir is not None:
        sys.path.append(str(app_dir))
    before = set(sys.modules)
    seen = ImportsSeen()
    sys.meta_path.insert(0, seen)  # type: ignore[arg-type]
    try:
        # stdout carries the JSON only: an app that prints at import time prints to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            module = user_code.import_app_file(app_file)
            imported = {name.partition(".")[0] for name in set(sys.modules) - before}
            imported |= seen.names
            imported.discard(module.__name__)
            local = modules_from(app_dir, imported, elsewhere) if app_dir else []
            description = describe_app(user_code.find_app(module), module.__name__, local)
            inline = user_code.find_app(module).objects.inline_values()
    except Exception as exc:
        print(user_code.user_traceback(exc, app_file), file=sys.stderr)
        return 1
    # Inline secrets' values ride beside the description, never in it (wire/mounts.py).
    json.dump({**description.to_dict(), **({INLINE_SECRETS: inline} if inline else {})},
              sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
