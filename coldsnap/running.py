"""Running an app from a script: ``with app.run():`` and ``coldsnap.enable_output()``.

``app.run()`` deploys an ephemeral copy of the app's file (as `coldsnap run`
does), points the app's handles at it, and stops and deletes it when the block
ends. Example::

    app = coldsnap.App("squares")

    @app.function()
    def square(x: int) -> int:
        return x * x

    if __name__ == "__main__":
        with coldsnap.enable_output(), app.run():
            print(square.remote(4))
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coldsnap.wire import ops
from coldsnap.wire.errors import InvalidError

if TYPE_CHECKING:
    from coldsnap.app import App

_output = {"enabled": False}


@contextlib.contextmanager
def enable_output(show_progress: bool = True) -> Iterator[None]:
    """Inside the block, ``app.run()`` prints what the server does (the image build's
    lines, the app's name) and all the app's container output (scheduled runs' and
    spawned calls' too, as it comes) to stderr. Without it, a call's own output still
    reaches the caller's stderr with its result."""
    before = _output["enabled"]
    _output["enabled"] = bool(show_progress)
    try:
        yield
    finally:
        _output["enabled"] = before


def output_enabled() -> bool:
    """True inside ``enable_output()``: show what the server does (image builds)."""
    return _output["enabled"]


def ephemeral_name(app_name: str) -> str:
    """A fresh name for an ephemeral copy: still a valid app name (64 at most)."""
    suffix = f"-run-{secrets.token_hex(3)}"
    return app_name[:64 - len(suffix)] + suffix


@contextlib.contextmanager
def run_app(app: App, detach: bool = False) -> Iterator[App]:
    """``app.run()``: an ephemeral copy of the app while the block runs. ``detach``: the
    copy keeps running (stopped, not deleted: `coldsnap app stop NAME` later)."""
    from coldsnap.client import Client  # the network only when the block starts

    if app._deployed_as is not None:
        raise InvalidError(f"app {app.name!r} is already running as "
                           f"{app._deployed_as!r}: app.run() can't be nested")
    path = app_file(app)
    client = Client.default()
    name = ephemeral_name(app.name)
    progress = _print_progress if _output["enabled"] else None
    client.deploy(path.read_bytes(), path.name, name=name, ephemeral=not detach,
                  app_dir=path.parent, progress=progress)
    if _output["enabled"]:
        print(f"coldsnap: running {path} as ephemeral app {name}", file=sys.stderr)
    app._deployed_as = name
    try:
        if _output["enabled"]:  # its containers' output, as `coldsnap run` shows it
            from coldsnap.app_output import follow_app_output

            with follow_app_output(client, name):
                yield app
        else:
            yield app
    finally:
        try:
            if not detach:
                client.request(ops.APP_STOP, app=name, delete=True)
        finally:
            app._deployed_as = None


def app_file(app: App) -> Path:
    """The file that defines the app's functions and classes: what the server deploys."""
    code: list[Any] = [f.raw_f for f in app.registered_functions.values()]
    code += [c.user_cls for c in app.registered_classes.values()]
    files = {getattr(sys.modules.get(getattr(obj, "__module__", "")), "__file__", None)
             for obj in code if obj is not None}
    files.discard(None)
    if len(files) != 1:
        found = ", ".join(sorted(str(f) for f in files)) or "none"
        raise InvalidError(f"app.run() deploys the one file that defines app {app.name!r}'s "
                           f"functions and classes; found {found}. Define them all in one "
                           "file, or deploy with `coldsnap run FILE`")
    return Path(str(files.pop())).resolve()


def _print_progress(line: str) -> None:
    print(f"[build] {line}", file=sys.stderr, flush=True)
