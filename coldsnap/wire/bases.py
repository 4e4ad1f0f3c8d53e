"""The base images a server builds itself: which Debian suite gives which Python.

``Image.debian_slim(python_version=...)`` is a Debian root filesystem with Debian's
own ``python3``, so a Python version is a choice of Debian suite. The SDK checks the
choice when an image is defined and the server picks the suite to build from the
same table, so it lives in the contract.
"""

from __future__ import annotations

import dataclasses
import re
import sys

from coldsnap.wire.errors import InvalidError

# Python's minor version -> the Debian suite whose python3 is that version. Only
# suites that this host's debootstrap (Debian 12's) builds from the archive and that
# coldsnap's runtime runs on (Python 3.11 and newer): bullseye's 3.9 is too old for
# the runtime, and testing (forky) changes its Python without notice.
DEBIAN_SUITES: dict[str, str] = {"3.11": "bookworm", "3.13": "trixie"}
# For a server whose own Python no suite ships: Debian's stable of the table.
DEFAULT_SUITE = "bookworm"
_VERSION = re.compile(r"(\d+)\.(\d+)(\.\d+)?")


@dataclasses.dataclass(frozen=True)
class DebianPython:
    """A Python version of ``debian_slim`` and the Debian suite that ships it."""

    python_version: str  # "3.11": the patch level is the suite's
    suite: str  # "bookworm"


def debian_python(
    python_version: str | None, current: tuple[int, int] | None = None
) -> DebianPython:
    """The suite for ``Image.debian_slim(python_version=...)``; InvalidError if none.

    ``None`` picks the Python of the process that asks (``current``, by default the
    running interpreter) when a suite ships it, else the default suite's Python.
    A patch version ("3.11.7") is refused: the image has the suite's python3, whose
    patch level can't be chosen. Example::

        debian_python("3.13")  # DebianPython(python_version="3.13", suite="trixie")
        debian_python(None, current=(3, 12))  # 3.11 on bookworm: no suite has 3.12
    """
    if python_version is None:
        major, minor = current or sys.version_info[:2]
        own = f"{major}.{minor}"
        if own in DEBIAN_SUITES:
            return DebianPython(own, DEBIAN_SUITES[own])
        default = next(v for v, s in DEBIAN_SUITES.items() if s == DEFAULT_SUITE)
        return DebianPython(default, DEFAULT_SUITE)
    match = _VERSION.fullmatch(python_version) if isinstance(python_version, str) else None
    if match is None:
        raise InvalidError(
            f"python_version={python_version!r} is not a Python version: write it as a "
            f"string like '3.11'; debian_slim offers {available_pythons()}"
        )
    minor_version = f"{int(match[1])}.{int(match[2])}"
    if minor_version not in DEBIAN_SUITES:
        raise InvalidError(
            f"python_version={python_version!r} is not available for debian_slim: "
            f"choose {available_pythons()}"
        )
    suite = DEBIAN_SUITES[minor_version]
    if match[3]:
        raise InvalidError(
            f"python_version={python_version!r}: debian_slim takes a minor version, "
            f"python_version={minor_version!r}; its Python is Debian {suite}'s python3 "
            "package, whose patch level can't be chosen"
        )
    return DebianPython(minor_version, suite)


def available_pythons() -> str:
    """The table in words: "3.11 (bookworm) or 3.13 (trixie)"."""
    choices = [f"{version} ({suite})" for version, suite in DEBIAN_SUITES.items()]
    return " or ".join([", ".join(choices[:-1]), choices[-1]] if len(choices) > 1 else choices)
