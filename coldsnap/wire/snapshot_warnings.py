"""Warnings at snapshot time: what the snapshot phase left in memory that a restore
can't bring back as it was, or that every restored copy shares.

The runtime gathers them just before ``ready_to_snapshot`` and sends them in that
message (``WARNINGS``); the server logs each one, keeps them in the snapshot's
metadata, and ``coldsnap snapshots inspect KEY`` shows them. None of them blocks
the snapshot (a CUDA context in a hidden-GPU snapshot is refused instead:
``snapshot_refused``). docs/snapshot-diagnostics.md lists them. Example::

    warning = SnapshotWarning(RNG_DRAWN, "random: state drawn before the snapshot")
    assert parse_warnings([warning.to_dict()]) == [warning]
"""

from __future__ import annotations

import dataclasses
from typing import Any

# The kinds, in the order a user should read them.
TCP_CONNECTION = "tcp_connection"  # established at the dump: closed at restore
FILE_OPEN_FOR_WRITING = "file_open_for_writing"
RNG_DRAWN = "rng_drawn"  # random, numpy, torch: every restore starts from that state
SECRET_IN_ENV = "secret_in_env"  # a variable whose name looks like a secret's (never its value)
CHILD_PROCESS = "child_process"
MEMORY_GROWTH = "memory_growth"  # in the last enter(snap=True) hook
KINDS = (TCP_CONNECTION, FILE_OPEN_FOR_WRITING, RNG_DRAWN, SECRET_IN_ENV, CHILD_PROCESS,
         MEMORY_GROWTH)
# A container is untrusted: what the server keeps of its warnings is bounded.
MAX_WARNINGS = 50
MAX_MESSAGE_CHARS = 400


@dataclasses.dataclass(frozen=True)
class SnapshotWarning:
    """One warning: its ``kind`` (one of ``KINDS``) and what to tell a person."""

    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


def parse_warnings(value: Any) -> list[SnapshotWarning]:
    """The well-formed warnings of ``value`` (a ``ready_to_snapshot``'s ``WARNINGS``);
    anything else is dropped, and at most ``MAX_WARNINGS`` are kept."""
    if not isinstance(value, list):
        return []
    warnings = []
    for item in value[:MAX_WARNINGS]:
        if isinstance(item, dict) and item.get("kind") in KINDS \
                and isinstance(item.get("message"), str):
            warnings.append(SnapshotWarning(item["kind"], item["message"][:MAX_MESSAGE_CHARS]))
    return warnings
