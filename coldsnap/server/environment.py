"""What a snapshot's memory depends on besides the app: the interpreter and its packages.

A snapshot holds imported modules in memory. When the files behind them change
(a package upgraded on the host, which a ``from_host()`` image sees; another
Python), restoring it would run the old code over the new files. So a snapshot
key includes a fingerprint of the container's interpreter and of every
distribution installed where that interpreter looks (``*.dist-info`` and
``*.egg-info`` names carry the versions), taken at each snapshot boot: a few
directory listings, well under a millisecond each.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def environment_fingerprint(python: str) -> str:
    """8 hex digits naming ``python`` and the distributions it can import."""
    binary = Path(python).resolve()
    stat = binary.stat()
    facts = {
        "python": [str(binary), stat.st_size, stat.st_mtime_ns],
        "distributions": sorted(_distributions(search_path(python))),
    }
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:8]


@functools.cache
def search_path(python: str) -> tuple[str, ...]:
    """The directories ``python`` imports from, as it reports them (asked once per
    interpreter; ``-I``: as in a container, no PYTHONPATH or user site). The server's
    own interpreter (``from_host()`` images) answers in-process: no subprocess on the
    way to a restore after a server restart."""
    if python == sys.executable:
        return tuple(sys.path)
    done = subprocess.run([python, "-I", "-c", "import sys; print('\\n'.join(sys.path))"],
                          capture_output=True, text=True, timeout=30, check=True)
    return tuple(line for line in done.stdout.splitlines() if line)


def _distributions(directories: tuple[str, ...]) -> list[str]:
    names = []
    for directory in directories:
        try:
            entries = os.listdir(directory)
        except OSError:  # a zip on the path, or a directory that went away
            continue
        names += [f"{directory}/{e}" for e in entries if e.endswith(_METADATA_SUFFIXES)]
    return names


def installed_distributions(python: str) -> dict[str, str]:
    """Distribution name -> version, of what ``python`` can import (the first of a name
    on its path wins, as for an import): what `coldsnap snapshots why` compares."""
    return distributions_in(search_path(python))


def distributions_in(directories: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in _distributions(tuple(directories)):
        name, _, version = Path(entry).name.rsplit(".", 1)[0].partition("-")
        found.setdefault(name.lower().replace("_", "-"), version)
    return found
