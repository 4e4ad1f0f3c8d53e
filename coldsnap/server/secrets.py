"""Secrets: named sets of environment variables, kept 0600 under the state dir.

``<state_dir>/secrets/`` (0700) holds one ``NAME.json`` (0600) per named secret
(`coldsnap secret create`) and ``.inline/APP.json`` (0600) with the values of an
app's ``Secret.from_dict`` / ``from_dotenv`` secrets, which each deploy replaces.
Descriptions, versions and snapshot keys carry only references (wire/mounts.py),
so a value read here at each boot is always the current one, and no value goes
into `apps` output, logs or snapshot metadata. Containers get the values as
environment variables: at start, and again after a restore (``resume``).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.settings import Settings
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND
from coldsnap.wire.mounts import NAME_RULE, SecretRef, is_object_name

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INLINE_DIR = ".inline"


def key_problem(key: object, value: object) -> str | None:
    """Why ``key=value`` can't be a secret's variable, or None."""
    if not (isinstance(key, str) and _KEY_RE.fullmatch(key)):
        return f"{key!r} is not a valid environment variable name"
    if key.startswith("COLDSNAP_"):
        return f"{key!r} is reserved: names starting with COLDSNAP_ belong to coldsnap"
    if not isinstance(value, str):
        return f"the value of {key!r} must be a str, not {type(value).__name__}"
    return None


def checked_values(values: object, what: str) -> dict[str, str]:
    """``values`` as a secret's variables; ApiError (BAD_REQUEST) says what is wrong."""
    if not isinstance(values, dict):
        raise ApiError(BAD_REQUEST, f"{what}: values must be a dict of str to str")
    for key, value in values.items():
        problem = key_problem(key, value)
        if problem:
            raise ApiError(BAD_REQUEST, f"{what}: {problem}")
    return dict(values)


class SecretStore:
    """The secrets of one server's state dir. Stateless: every call reads the disk."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.state_dir / "secrets"

    def _dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def _file(self, name: str) -> Path:
        if not is_object_name(name):
            raise ApiError(BAD_REQUEST, f"secret name {name!r} is invalid: use {NAME_RULE}")
        return self.root / f"{name}.json"

    def create(self, name: str, values: object, force: bool = False) -> dict[str, Any]:
        path = self._file(name)
        checked = checked_values(values, f"secret {name!r}")
        if not checked:
            raise ApiError(BAD_REQUEST, f"secret {name!r} needs at least one KEY=VALUE")
        existed = path.exists()
        if existed and not force:
            raise ApiError(BAD_REQUEST, f"secret {name!r} already exists; replace it with "
                           f"`coldsnap secret create {name} KEY=VALUE ... --force`")
        self._dir(self.root)
        _write_private(path, checked)
        return {"name": name, "keys": sorted(checked), "replaced": existed}

    def ls(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        rows = []
        for path in sorted(self.root.glob("*.json")):
            rows.append({"name": path.stem, "created_at": path.stat().st_mtime,
                         "keys": sorted(_read(path))})
        return rows

    def rm(self, name: str) -> dict[str, Any]:
        path = self._file(name)
        if not path.exists():
            raise self._missing(name)
        path.unlink()
        return {"name": name, "removed": True}

    def values(self, name: str) -> dict[str, str]:
        path = self._file(name)
        if not path.exists():
            raise self._missing(name)
        return _read(path)

    def _missing(self, name: str) -> ApiError:
        return ApiError(NOT_FOUND, f"no secret named {name!r}; create it with "
                        f"`coldsnap secret create {name} KEY=VALUE ...`")

    # -- inline secrets (Secret.from_dict / from_dotenv), per app --------------

    def put_inline(self, app: str, secrets: dict[str, dict[str, str]]) -> None:
        """Replace ``app``'s inline secrets (a deploy hands them over each time)."""
        path = self.root / INLINE_DIR / f"{app}.json"
        if not secrets:
            path.unlink(missing_ok=True)
            return
        for ref, values in secrets.items():
            checked_values(values, f"coldsnap.Secret.from_dict ({ref})")
        self._dir(self.root)
        self._dir(self.root / INLINE_DIR)
        _write_private(path, secrets)

    def drop_inline(self, app: str) -> None:
        (self.root / INLINE_DIR / f"{app}.json").unlink(missing_ok=True)

    def env_for(self, app: str, refs: tuple[SecretRef, ...]) -> dict[str, str]:
        """The variables of ``refs`` in order (a later secret wins), read now.
        ApiError NOT_FOUND names a missing secret and how to create it."""
        env: dict[str, str] = {}
        inline: dict[str, Any] | None = None
        for ref in refs:
            if ref.inline:
                if inline is None:
                    inline = _read(self.root / INLINE_DIR / f"{app}.json", missing_ok=True)
                env.update(inline.get(ref.name) or {})
            else:
                env.update(self.values(ref.name))
        return env


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path``, 0600 from the start, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path, missing_ok: bool = False) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise
    return data if isinstance(data, dict) else {}
