"""What build containers borrow from the host: its pip configuration and uv.

A step such as ``pip_install`` on ``debian_slim()`` runs the image's pip inside a
build container, whose root is the image: the host's pip configuration (an
index, ``find-links`` wheel dirs, a constraints file) would be out of sight.
The server makes it visible read-only instead (``ContainerSpec.binds``), so a
build resolves packages the way ``pip install`` on the server's host does. The
same settings are handed to uv in its own variable names.
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
from pathlib import Path

CONFIG_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.config/pip/pip.conf",
                "~/.pip/pip.conf")
# pip's option (as in pip.conf and PIP_*) -> uv's variable.
UV_NAMES = {"find-links": "UV_FIND_LINKS", "index-url": "UV_INDEX_URL",
            "extra-index-url": "UV_EXTRA_INDEX_URL", "constraint": "UV_CONSTRAINT"}


def pip_settings() -> dict[str, str]:
    """pip's options on this host, as ``{"find-links": "...", ...}``: config files
    first, PIP_* variables over them (pip's own precedence)."""
    options: dict[str, str] = {}
    for path in _config_files():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                options.update(parser.items(section))
    for name, value in os.environ.items():
        if name.startswith("PIP_"):
            options[name[4:].lower().replace("_", "-")] = value
    return options


def pip_env() -> dict[str, str]:
    """The PIP_* variables and PIP_CONFIG_FILE of this process, for a build's pip."""
    return {k: v for k, v in os.environ.items() if k.startswith("PIP_")}


def uv_env() -> dict[str, str]:
    """pip's index settings of this host under uv's names. pip takes the best match
    across all its indexes, uv by default only the first index that has a package:
    its "unsafe-best-match" strategy is pip's behaviour."""
    env = {"UV_INDEX_STRATEGY": "unsafe-best-match"}
    settings = pip_settings()
    for option, name in UV_NAMES.items():
        if settings.get(option):
            env[name] = " ".join(settings[option].split())
    if settings.get("cert"):  # pip's CA bundle (bound into the build): uv's too
        env.update(SSL_CERT_FILE=settings["cert"], UV_SYSTEM_CERTS="1")
    return env


def pip_binds() -> tuple[str, ...]:
    """Host paths a build's pip needs: the config files and every local path they
    (or PIP_* variables) name, outermost first, none inside another."""
    paths = set(_config_files())
    for value in pip_settings().values():
        for word in value.split():
            path = os.path.normpath(word.removeprefix("file://"))
            if word.startswith("file://") and os.path.basename(path) == "simple":
                path = os.path.dirname(path)  # a local index links to files beside simple/
            if path.startswith("/") and os.path.exists(path):
                paths.add(path)
    ordered = sorted(paths)
    return tuple(p for p in ordered
                 if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in ordered))


def uv_binary() -> str | None:
    """The uv of the server's environment (the ``uv`` package from PyPI), or None."""
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


def _config_files() -> list[str]:
    candidates = [os.path.expanduser(p) for p in CONFIG_FILES]
    if os.environ.get("PIP_CONFIG_FILE"):
        candidates.append(os.environ["PIP_CONFIG_FILE"])
    return [p for p in candidates if os.path.isfile(p)]
