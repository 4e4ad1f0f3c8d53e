"""How volumes and secrets cross the wire: by reference, never by content.

A function's options name the volumes it mounts (``VolumeRef``: a name, and
whether a deploy may create it) and the secrets it gets (``SecretRef``: a
name the server stores, or an ``inline`` id of a ``Secret.from_dict`` that
travels beside the description, never inside it). So a version, and with it a
snapshot key, changes when a function mounts another volume or uses another
secret, never when a volume's files or a secret's values change. Example::

    VolumeRef.from_dict({"name": "models", "create_if_missing": True}).name  # "models"
    SecretRef.from_dict({"name": "hf"}).to_dict()  # {"name": "hf"}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Volume and secret names: the app-name rule (safe as a file name and in a table).
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
# Mount points a volume can't take: the container's own system directories.
RESERVED_MOUNT_POINTS = frozenset({"/", "/proc", "/dev", "/sys", "/etc", "/usr", "/bin",
                                   "/sbin", "/lib", "/lib64", "/opt/coldsnap", "/__coldsnap__"})
# Prefix of the ids of ``Secret.from_dict`` / ``from_dotenv`` secrets in a description.
INLINE_PREFIX = "inline-"


def is_object_name(name: object) -> bool:
    """True for a valid volume or secret name."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


@dataclasses.dataclass(frozen=True)
class VolumeRef:
    """A volume by name; ``create_if_missing``: a deploy creates it when absent."""

    name: str
    create_if_missing: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "create_if_missing": self.create_if_missing}

    @classmethod
    def from_dict(cls, data: Any) -> VolumeRef:
        if isinstance(data, VolumeRef):
            return data
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict):
            raise ValueError(f"a volume reference is a dict, not {type(data).__name__}")
        return cls(data.get("name"), bool(data.get("create_if_missing", False)))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class SecretRef:
    """A secret the server stores by ``name``, or an inline one (``inline-N``), whose
    values the deploy hands the server apart from the description."""

    name: str

    @property
    def inline(self) -> bool:
        return self.name.startswith(INLINE_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_dict(cls, data: Any) -> SecretRef:
        if isinstance(data, SecretRef):
            return data
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict):
            raise ValueError(f"a secret reference is a dict, not {type(data).__name__}")
        return cls(data.get("name"))  # type: ignore[arg-type]


def volume_problems(volumes: object) -> Iterator[str]:
    """What is wrong with a ``volumes=`` mapping of mount points to ``VolumeRef``s."""
    if not isinstance(volumes, dict):
        yield f"volumes must be a dict of mount path to volume, not {type(volumes).__name__}"
        return
    for path, ref in volumes.items():
        if not (isinstance(path, str) and path.startswith("/")):
            yield f"volumes: the mount path {path!r} must be an absolute path like '/data'"
        elif path.rstrip("/") != path or "//" in path or "/../" in path + "/" \
                or "/./" in path + "/":
            yield f"volumes: the mount path {path!r} must be normalized, like '/data'"
        elif _reserved(path):
            yield (f"volumes: {path!r} is a system directory of the container; "
                   "mount the volume elsewhere, e.g. at '/data'")
        if not (isinstance(ref, VolumeRef) and is_object_name(ref.name)):
            yield f"volumes[{path!r}]: volume name must be {NAME_RULE}"
    paths = sorted(p for p in volumes if isinstance(p, str))
    for outer, inner in zip(paths, paths[1:], strict=False):
        if inner.startswith(outer + "/"):
            yield f"volumes: {inner!r} lies inside {outer!r}; mount volumes side by side"


def secret_problems(secrets: object) -> Iterator[str]:
    """What is wrong with a ``secrets=`` list of ``SecretRef``s."""
    if not isinstance(secrets, tuple):
        yield f"secrets must be a list of coldsnap.Secret, not {type(secrets).__name__}"
        return
    for ref in secrets:
        if not (isinstance(ref, SecretRef) and is_object_name(ref.name)):
            yield f"secrets: {ref!r} is not a coldsnap.Secret (names are {NAME_RULE})"


def _reserved(path: str) -> bool:
    return any(path == top or (top != "/" and path.startswith(top + "/"))
               for top in RESERVED_MOUNT_POINTS)
