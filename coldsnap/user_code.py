"""The user's code as coldsnap meets it: an app file to import, its App, function or
class to find, and functions that may be ``async def``.

The runtime (in containers), the deploy's ``describe`` and `coldsnap run` (on the
client) all import app files the same way, through here."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from coldsnap.app import App
from coldsnap.handles import Cls, Function
from coldsnap.wire.names import module_name_for


def import_app_file(path: Path, search_dir: Path | None = None) -> ModuleType:
    """Import ``path`` as a module named by ``module_name_for`` (``app.py`` -> ``app``).

    ``search_dir`` (default: the file's directory) goes first on sys.path so the
    app's sibling modules import. The module is not ``__main__``: an app's
    ``if __name__ == "__main__":`` block is client code and must not run here.
    """
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"app file {path} does not exist")
    sys.path.insert(0, str((search_dir or path.parent).resolve()))
    name = module_name_for(path.name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"can't import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # Compiled from its bytes, not through the loader: a __pycache__ entry is
        # trusted when the file's mtime (in whole seconds) and size match, so a file
        # rewritten within a second by one of the same size ("one" -> "two") would
        # run its old code. No __pycache__ is written next to the user's file either.
        exec(compile(path.read_bytes(), str(path), "exec", dont_inherit=True),
             module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def find_app(module: ModuleType) -> App:
    """The one App the module defines at top level."""
    apps = {id(v): v for v in vars(module).values() if isinstance(v, App)}
    if len(apps) != 1:
        found = "none" if not apps else ", ".join(repr(a.name) for a in apps.values())
        raise LookupError(
            f"{module.__file__} must define exactly one coldsnap.App at top level "
            f"(found {found}). Add `app = coldsnap.App('my-app')` and decorate functions "
            "with @app.function() or classes with @app.cls()."
        )
    return next(iter(apps.values()))


def find_handle(app: App, tag: str) -> Function[..., object] | Cls[object]:
    """The function or class the container serves."""
    handle = app.registered_functions.get(tag) or app.registered_classes.get(tag)
    if handle is None:
        names = sorted([*app.registered_functions, *app.registered_classes])
        raise LookupError(
            f"app {app.name!r} has no function or class named {tag!r}; it has: "
            f"{', '.join(names) or 'nothing'}. Was the app changed since it was deployed?"
        )
    return handle


def user_traceback(exc: BaseException, app_file: Path) -> str:
    """``exc``'s traceback from the app file's first frame on: coldsnap's and
    importlib's frames above it are noise to the user who must fix the error.
    (A SyntaxError has no frame in the file: it shows just the file, line and caret.)"""
    trace = traceback.TracebackException.from_exception(exc)
    user_file = str(app_file.resolve())
    while trace.stack and trace.stack[0].filename != user_file:
        trace.stack.pop(0)
    return "".join(trace.format()).rstrip()


def run_maybe_async(result: Any) -> Any:
    """Await ``result`` if user code was ``async def`` (hooks, ``.local()``, calls)."""
    if inspect.iscoroutine(result):
        import asyncio

        return asyncio.run(result)
    return result
