"""A container's limits: the server's defaults, a function's own, and the words for
the ones it reached.

Memory, CPU and processes are cgroups (cgroups.py); the disk is a filesystem of the
container's own (disks.py). A function's ``memory=``, ``cpu=`` and ``ephemeral_disk=``
arrive in the ContainerSpec and beat the ``COLDSNAP_CONTAINER_*`` defaults.
"""

from __future__ import annotations

from pathlib import Path

from coldsnap.engine.base import Container, ContainerSpec
from coldsnap.engine.cgroups import CgroupLimits, host_memory_mb
from coldsnap.engine.disks import DiskPool, full_words
from coldsnap.engine.sandbox import ContainerDirs
from coldsnap.settings import Settings


class ContainerLimits:
    """Applies the limits to each container of an engine."""

    def __init__(self, settings: Settings, disks: DiskPool) -> None:
        self.settings = settings
        self.disks = disks
        # The default memory limit is capped at the host's RAM (a function's is not).
        self.default_memory_mb = min(settings.container_memory_mb,
                                     host_memory_mb() or settings.container_memory_mb)

    def disk_mb(self, spec: ContainerSpec) -> int:
        return spec.disk_mb or self.settings.container_disk_mb

    def dirs(self, spec: ContainerSpec) -> ContainerDirs:
        """The container's dirs, its upper dir on a disk of its own (unless the disk
        limit is 0: then on the run dir's tmpfs, in RAM)."""
        size_mb = self.disk_mb(spec)
        attach = None
        if size_mb:
            def attach(target: Path) -> None:
                self.disks.attach(size_mb, target, spec.container_id)
        try:
            return ContainerDirs(self.settings.run_path, spec.container_id, attach)
        except BaseException:
            self.disks.delete(spec.container_id)  # its dirs removed themselves, and the mount
            raise

    def cgroups(self, spec: ContainerSpec) -> CgroupLimits:
        """The container's cgroup limits; ``create`` them before it starts (nsinit.py
        and criu.restore join them)."""
        return CgroupLimits(
            spec.memory_mb or self.default_memory_mb,
            spec.cpus or self.settings.container_cpus,
            self.settings.container_pids,
        )

    def apply(self, container: Container, spec: ContainerSpec, upper: Path,
              groups: CgroupLimits) -> None:
        """Keep the container in its cgroups and let it tell which limits it reached."""
        if groups.enabled:  # its processes joined the groups as they started
            container.cleanups.append(groups.apply(container.id, []))
        disk_mb = self.disk_mb(spec)

        def reached() -> list[str]:
            words = groups.reached(container.id) if groups.enabled else []
            full = full_words(upper, disk_mb) if disk_mb else None
            return words + ([full] if full else [])

        container.limits_reached = reached
