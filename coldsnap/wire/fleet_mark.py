"""A state dir that belongs to a fleet: ``<state_dir>/fleet-cluster`` holds the
``--cluster`` address its control plane was last served with.

``coldsnap serve --cluster ADDRESS`` writes it once it holds the state dir; a
``coldsnap serve`` without a cluster removes it (the dir is a single host's again).
A client that finds no server reads it and starts none: a fleet's control plane is
started by hand (docs/fleet.md, "When the control plane stops"). Example::

    remember_fleet(state_dir, "ray://10.0.0.5:6379")
    fleet_cluster(state_dir)  # "ray://10.0.0.5:6379"
"""

from __future__ import annotations

import os
from pathlib import Path

MARK_NAME = "fleet-cluster"


def mark_path(state_dir: Path) -> Path:
    return state_dir / MARK_NAME


def fleet_cluster(state_dir: Path) -> str | None:
    """The cluster address of the fleet this state dir belongs to, or None (a single
    host's, or a dir no server used yet)."""
    try:
        cluster = mark_path(state_dir).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return cluster or None


def remember_fleet(state_dir: Path, cluster: str) -> None:
    """Mark ``state_dir`` as the fleet's of ``cluster``: written whole or not at all."""
    path = mark_path(state_dir)
    partial = path.with_name(f".{MARK_NAME}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(cluster + "\n")
    os.replace(partial, path)


def forget_fleet(state_dir: Path) -> None:
    mark_path(state_dir).unlink(missing_ok=True)


def serve_command(cluster: str) -> str:
    """The command that starts the fleet's control plane again."""
    return f"coldsnap serve --cluster {cluster}"
