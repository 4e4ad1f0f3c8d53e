"""Names both sides must agree on: valid app names, and an app file's module name."""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import PurePath
from typing import TypeGuard

_APP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The one rule for app names: App(name) in the SDK and `deploy --name` at the server.
APP_NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_app_name(name: object) -> TypeGuard[str]:
    """True for a valid app name: no '/', '..', space or newline, so it is safe in a
    path, a shell command and a table row."""
    return isinstance(name, str) and _APP_NAME_RE.fullmatch(name) is not None


def module_name_for(filename: str) -> str:
    """The module name an app file is imported under, by the client and in its
    containers alike: its stem (``embedder.py`` -> ``embedder``), unless that is
    no identifier or would shadow the standard library or coldsnap, then ``app``.

    One name on both sides lets the app's own classes and exceptions travel by
    reference, so ``except MyError`` and ``isinstance`` work on the caller's side.
    """
    stem = PurePath(filename).name.removesuffix(".py")
    if (not stem.isidentifier() or keyword.iskeyword(stem)
            or stem in sys.stdlib_module_names or stem == "coldsnap"):
        return "app"
    return stem
