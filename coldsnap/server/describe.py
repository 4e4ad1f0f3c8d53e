"""Describing a deploy: import the app in a subprocess to learn it, and name the version.

A version is a content hash of the source, the image spec, every function's
options and coldsnap's own code, so redeploying unchanged code is a no-op and
any change gives a new version (and new snapshot keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from coldsnap.identity import coldsnap_fingerprint, coldsnap_version
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import host_env
from coldsnap.wire.description import AppDescription, DescriptionError
from coldsnap.wire.errors import BAD_REQUEST, DEPLOY_FAILED, InvalidError
from coldsnap.wire.names import APP_NAME_RULE, is_app_name, module_name_for

DESCRIBE_ENV = frozenset({"PATH", "HOME", "LANG"})


def describe_source(
    source: bytes, filename: str, timeout_s: float, cwd: str | None = None,
    app_dir: str | None = None,
) -> AppDescription:
    """Import the app in a fresh interpreter and return its description (protocol.md).

    ``cwd``: the deploying client's working directory, against which the app's
    relative paths (``Image.add_local_file("cfg.txt", ...)``) resolve. ``app_dir``:
    the app file's directory; modules the app imports from there join its image.
    """
    module = module_name_for(filename)
    with tempfile.TemporaryDirectory(prefix="coldsnap-describe-") as tmp:
        # The client's own file when this host has it as sent: the app's
        # ``Path(__file__).parent / "assets"`` must name the client's directory.
        app_file = _client_file(app_dir, filename, source) or os.path.join(tmp, f"{module}.py")
        if not os.path.exists(app_file):
            with open(app_file, "wb") as handle:
                handle.write(source)
        # Only what an import needs: the app's own code runs here, as the server's user.
        env = host_env(DESCRIBE_ENV, locale=False)
        try:
            proc = subprocess.run(
                # -P: the working directory is not on sys.path (as in a container).
                [sys.executable, "-P", "-m", "coldsnap._runtime.describe", app_file,
                 *([app_dir] if app_dir and os.path.isdir(app_dir) else [])],
                cwd=cwd if cwd and os.path.isdir(cwd) else tmp, env=env,
                capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ApiError(DEPLOY_FAILED, f"importing {filename} took longer than "
                           f"{timeout_s:.0f} s; move slow work out of module level "
                           "(into @enter hooks)") from None
        # Show the user's file name in tracebacks, not the temp copy's.
        stderr = proc.stderr.decode("utf-8", "replace").replace(app_file, filename)
    if proc.returncode != 0:
        raise ApiError(DEPLOY_FAILED, f"importing {filename} failed, so it can't be "
                       f"deployed. Fix the error below and deploy again.\n\n{stderr.rstrip()}")
    try:
        return checked_description(json.loads(proc.stdout), filename)
    except ValueError:
        raise ApiError(DEPLOY_FAILED, f"describing {filename} printed no JSON; does the app "
                       f"print to stdout at import time?\n{stderr}") from None


def checked_description(data: Any, filename: str) -> AppDescription:
    """``data`` typed and validated, or a deploy error that says what to fix. (An app
    file without an App fails in describe already, with the loader's message.)"""
    try:
        description = AppDescription.from_dict(data)
    except (DescriptionError, InvalidError) as exc:
        raise ApiError(DEPLOY_FAILED, f"the description of {filename} is malformed: {exc}. "
                       "This is a coldsnap bug; please report it") from None
    if not description.functions:
        raise ApiError(DEPLOY_FAILED, f"app {description.name!r} in {filename} has no "
                       "functions; decorate one with @app.function() or @app.cls()")
    return description


def version_of(source: bytes, description: AppDescription) -> str:
    """The version's name: a hash of everything that makes a container differ."""
    identity = {
        "source": hashlib.sha256(source).hexdigest(),
        "description": description.to_dict(),  # the image, every function's options, ...
        "coldsnap": coldsnap_version(),
        "coldsnap_code": coldsnap_fingerprint(),
        # Functions' own images, with the contents of their local files.
        "images": {tag: fn.image_spec.hash() for tag, fn in description.functions.items()
                   if fn.image_spec is not None},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def check_app_name(name: object) -> str:
    """The SDK's rule for ``App(name)``, so `deploy --name` can't make a name App() refuses
    (".", "..", a newline that breaks `apps ls`, a shell metacharacter)."""
    if not is_app_name(name):
        raise ApiError(BAD_REQUEST, f"app name {name!r} is not valid: use {APP_NAME_RULE}")
    return name


def _client_file(app_dir: str | None, filename: str, source: bytes) -> str | None:
    """``app_dir/filename`` when it holds exactly ``source`` (client and server share
    this host, and the file did not change since it was read), else None."""
    if not app_dir:
        return None
    path = os.path.join(app_dir, os.path.basename(filename))
    try:
        with open(path, "rb") as handle:
            return path if handle.read() == source else None
    except OSError:
        return None
