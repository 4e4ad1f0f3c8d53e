"""coldsnap's own identity: its release, and a hash of its code.

Kept apart from the server, which uses both to name versions: a client needs
the hash too (to spot a background server running other code), and must not
import the server to get it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


def coldsnap_version() -> str:
    from importlib import metadata  # ~20 ms to import: only when asked

    try:
        return metadata.version("coldsnap")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def coldsnap_fingerprint() -> str:
    """A hash of coldsnap's own code: a snapshot holds the runtime as it was when it
    was taken, so any change to coldsnap (not only a release) makes new versions."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
