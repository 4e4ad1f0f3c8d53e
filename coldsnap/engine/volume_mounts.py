"""Volumes across a snapshot: which host dir CRIU binds for each, and when a restore's
failure is a volume file's doing.

A volume is a bind mount (nsinit.py, or the host's idmapped view in a user
namespace) that CRIU dumps as an external mount, ``vol-N`` by mount path
(criu.py). The snapshot's metadata keeps ``{mount path: vol-N}``, never a
volume's name or files; a restore binds what the container's spec names now.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coldsnap.engine import criu
from coldsnap.engine.base import ContainerSpec, RestoreFailed, SnapshotInfo
from coldsnap.engine.sandbox import ContainerDirs

Idmap = Callable[[Path, Path], None]


def volume_sources(info: SnapshotInfo, spec: ContainerSpec, dirs: ContainerDirs,
                   idmap: Idmap | None) -> dict[str, Path]:
    """The dump's volume keys -> what CRIU binds for each now: the volume's host dir, or
    (``idmap``: a user namespace) an idmapped view of it. The version names the mount
    paths, so a snapshot's and a spec's differ only by a bug: then no restore."""
    saved: dict[str, str] = info.extra.get("volumes") or {}
    if sorted(saved) != sorted(spec.volumes):
        raise RestoreFailed(f"snapshot {info.key} mounts volumes at {sorted(saved)}, "
                            f"this container at {sorted(spec.volumes)}")
    dirs.volumes = sorted(spec.volumes)
    sources = dirs.volume_views(spec.volumes, idmap) if idmap is not None else spec.volumes
    return {key: sources[path] for path, key in saved.items()}


def stale_volume_file(info: SnapshotInfo, exc: RestoreFailed) -> str | None:
    """The volume file (its path in the container) whose size changed since the dump,
    when that is why CRIU refused the restore; else None."""
    path = criu.bad_size_file(exc.reason)
    mounts = info.extra.get("volumes") or {}
    if path is None or not any(path.startswith(mount + "/") for mount in mounts):
        return None
    return path
