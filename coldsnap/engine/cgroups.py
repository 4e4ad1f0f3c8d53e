"""Memory and CPU limits for containers, from cgroups v2 or v1 where available.

Each container gets its own group under ``coldsnap/``; its processes are moved
in right after start or restore (CRIU runs with --manage-cgroups=ignore, so a
snapshot carries no cgroup of its own and every copy gets a fresh one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CgroupLimits:
    def __init__(self, memory_mb: int, cpus: float, root: Path = ROOT) -> None:
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.root = root
        self.v2 = (root / "cgroup.controllers").exists()
        self._groups: dict[str, list[Path]] = {}

    @property
    def enabled(self) -> bool:
        return self.memory_mb > 0 or self.cpus > 0

    def apply(self, container_id: str, pids: list[int]) -> Callable[[], None]:
        """Put ``pids`` in a new group with the limits; returns its cleanup."""
        groups = self._v2_group(container_id) if self.v2 else self._v1_groups(container_id)
        for group in groups:
            for pid in pids:
                (group / "cgroup.procs").write_text(str(pid))

        self._groups[container_id] = groups

        def remove() -> None:
            self._groups.pop(container_id, None)
            for group in groups:
                try:
                    os.rmdir(group)
                except OSError:
                    pass  # still has processes (it is being killed) or already gone

        return remove

    def exit_cause(self, container_id: str) -> str | None:
        """Words for why the container exited when the kernel killed one of its processes
        for the memory limit ("it ran out of memory (limit ...)"), else None. Read before
        the group is removed."""
        for group in self._groups.get(container_id, []):
            for events in (group / "memory.events", group / "memory.oom_control"):
                try:
                    counts = dict(line.split() for line in events.read_text().splitlines())
                except (OSError, ValueError):
                    continue
                if int(counts.get("oom_kill", "0")) > 0:
                    return (f"it ran out of memory (limit {self.memory_mb} MiB, "
                            "COLDSNAP_CONTAINER_MEMORY_MB): raise the limit or use less")
        return None

    def _v2_group(self, container_id: str) -> list[Path]:
        parent = self.root / "coldsnap"
        parent.mkdir(exist_ok=True)
        (self.root / "cgroup.subtree_control").write_text("+memory +cpu")
        (parent / "cgroup.subtree_control").write_text("+memory +cpu")
        group = parent / container_id
        group.mkdir()
        if self.memory_mb:
            (group / "memory.max").write_text(str(self.memory_mb << 20))
        if self.cpus:
            (group / "cpu.max").write_text(f"{int(self.cpus * PERIOD_US)} {PERIOD_US}")
        return [group]

    def _v1_groups(self, container_id: str) -> list[Path]:
        groups = []
        if self.memory_mb and (self.root / "memory").is_dir():
            group = self.root / "memory" / "coldsnap" / container_id
            group.mkdir(parents=True)
            (group / "memory.limit_in_bytes").write_text(str(self.memory_mb << 20))
            groups.append(group)
        if self.cpus and (self.root / "cpu").is_dir():
            group = self.root / "cpu" / "coldsnap" / container_id
            group.mkdir(parents=True)
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(int(self.cpus * PERIOD_US)))
            groups.append(group)
        return groups


def group_paths(container_id: str, root: Path = ROOT) -> list[Path]:
    """Where ``CgroupLimits.apply`` puts a container's groups (v2, or v1's memory and cpu)."""
    return [root / sub / "coldsnap" / container_id for sub in ("", "memory", "cpu")]
