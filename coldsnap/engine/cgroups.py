"""Memory, CPU and process limits for containers, from cgroups v2 or v1 where available.

Each container gets its own group under ``coldsnap/``; its processes are moved
in right after start or restore (CRIU runs with --manage-cgroups=ignore, so a
snapshot carries no cgroup of its own and every copy gets a fresh one). The
kernel counts the times a limit bit (an OOM kill, a refused fork); ``reached``
turns new counts into the words the caller reads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def host_memory_mb() -> int:
    """The host's RAM in MiB (MemTotal), or 0 if /proc/meminfo can't say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_words(limit_mb: int) -> str:
    return f"container ran out of memory (limit {limit_mb} MiB): raise memory="


def pids_words(limit: int) -> str:
    return f"too many processes (limit {limit})"


class CgroupLimits:
    def __init__(self, memory_mb: int, cpus: float, pids: int = 0, root: Path = ROOT) -> None:
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.pids = pids
        self.root = root
        self.v2 = (root / "cgroup.controllers").exists()
        self._groups: dict[str, list[Path]] = {}
        self._seen: dict[tuple[str, str], int] = {}  # (container, counter): count reported

    @property
    def enabled(self) -> bool:
        return self.memory_mb > 0 or self.cpus > 0 or self.pids > 0

    def create(self, container_id: str) -> list[Path]:
        """The container's new groups with the limits, before any process joins: a
        container joins them before it makes its cgroup namespace (nsinit.py), so the
        namespace is rooted at its own group (CRIU refuses to dump a task whose group
        lies outside its namespace's root)."""
        groups = self._v2_group(container_id) if self.v2 else self._v1_groups(container_id)
        self._groups[container_id] = groups
        return groups

    def discard(self, container_id: str) -> None:
        """Remove the groups of a container that never started."""
        for group in self._groups.pop(container_id, []):
            with contextlib.suppress(OSError):
                os.rmdir(group)

    def apply(self, container_id: str, pids: list[int]) -> Callable[[], None]:
        """Put ``pids`` in the container's groups (made now unless ``create`` made them);
        returns their cleanup."""
        groups = self._groups.get(container_id) or self.create(container_id)
        for group in groups:
            for pid in pids:
                try:
                    (group / "cgroup.procs").write_text(str(pid))
                except ProcessLookupError:
                    pass  # it exited already (a short build step): nothing to limit

        self._groups[container_id] = groups

        def remove() -> None:
            self._groups.pop(container_id, None)
            for key in [k for k in self._seen if k[0] == container_id]:
                del self._seen[key]
            for group in groups:
                try:
                    os.rmdir(group)
                except OSError:
                    pass  # still has processes (it is being killed) or already gone

        return remove

    def reached(self, container_id: str) -> list[str]:
        """Words for each limit the container hit since the last ask: an OOM kill
        ("container ran out of memory (limit ...)"), a fork refused at the pids limit
        ("too many processes (limit ...)"). Read before the group is removed."""
        words = []
        counters = (("memory.events", "oom_kill", memory_words(self.memory_mb)),
                    ("memory.oom_control", "oom_kill", memory_words(self.memory_mb)),
                    ("pids.events", "max", pids_words(self.pids)))
        for group in self._groups.get(container_id, []):
            for file, counter, text in counters:
                count = _counter(group / file, counter)
                if count > self._seen.get((container_id, counter), 0):
                    self._seen[(container_id, counter)] = count
                    words.append(text)
        return words

    def _v2_group(self, container_id: str) -> list[Path]:
        parent = self.root / "coldsnap"
        parent.mkdir(exist_ok=True)
        (self.root / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        (parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        group = parent / container_id
        group.mkdir()
        if self.memory_mb:
            (group / "memory.max").write_text(str(self.memory_mb << 20))
        if self.cpus:
            (group / "cpu.max").write_text(f"{int(self.cpus * PERIOD_US)} {PERIOD_US}")
        if self.pids:
            (group / "pids.max").write_text(str(self.pids))
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
        if self.pids and (self.root / "pids").is_dir():
            group = self.root / "pids" / "coldsnap" / container_id
            group.mkdir(parents=True)
            (group / "pids.max").write_text(str(self.pids))
            groups.append(group)
        return groups


def group_paths(container_id: str, root: Path = ROOT) -> list[Path]:
    """Where ``CgroupLimits.apply`` puts a container's groups (v2, or v1's memory, cpu and
    pids)."""
    return [root / sub / "coldsnap" / container_id for sub in ("", "memory", "cpu", "pids")]


def _counter(events: Path, name: str) -> int:
    """The count ``name`` in an events file of ``name value`` lines (0 if absent)."""
    try:
        counts = dict(line.split() for line in events.read_text().splitlines())
        return int(counts.get(name, "0"))
    except (OSError, ValueError):
        return 0
