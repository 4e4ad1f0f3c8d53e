"""Where a container goes: the host with room, preferring those that hold its snapshot.

Pure logic over what each host offers (``Capacity``) and what the fleet already
placed there (``HostLoad``): a host has room when the container's CPUs, memory
and GPUs fit in what is left. Among hosts with room, those the caller prefers
(they hold the function's snapshot) come first; otherwise the least loaded one
wins, so containers spread.
"""

from __future__ import annotations

import dataclasses

from coldsnap.engine import ContainerSpec
from coldsnap.server.fleet.agent import Capacity


@dataclasses.dataclass(frozen=True)
class Demand:
    """What one container takes of a host's capacity."""

    cpus: float
    memory_mb: float = 0.0
    gpus: float = 0.0

    @classmethod
    def of(cls, spec: ContainerSpec, default_cpus: float) -> Demand:
        """A container's demand: its ``cpu=`` (else the server's default, else one CPU),
        its ``memory=`` when set (the default limit is a ceiling, not a reservation) and
        the GPUs it is given (``CUDA_VISIBLE_DEVICES``)."""
        return cls.sized(spec.cpus, spec.memory_mb, spec.env.get("CUDA_VISIBLE_DEVICES", ""),
                         default_cpus)

    @classmethod
    def sized(cls, cpus: float, memory_mb: float, gpu_devices: str,
              default_cpus: float) -> Demand:
        """The demand of a container of that size (``gpu_devices``: CUDA_VISIBLE_DEVICES)."""
        gpus = len([d for d in gpu_devices.split(",") if d.strip()])
        return cls(cpus or default_cpus or 1.0, float(memory_mb or 0), float(gpus))


@dataclasses.dataclass
class HostLoad:
    """What the fleet placed on one host and has not seen leave yet."""

    cpus: float = 0.0
    memory_mb: float = 0.0
    gpus: float = 0.0
    containers: int = 0

    def add(self, demand: Demand, sign: int = 1) -> None:
        self.cpus += sign * demand.cpus
        self.memory_mb += sign * demand.memory_mb
        self.gpus += sign * demand.gpus
        self.containers += sign


def fits(capacity: Capacity | None, load: HostLoad, demand: Demand) -> bool:
    if capacity is None:
        return True
    eps = 1e-9
    return (load.cpus + demand.cpus <= capacity.cpus + eps
            and load.memory_mb + demand.memory_mb <= capacity.memory_mb + eps
            and load.gpus + demand.gpus <= capacity.gpus + eps)


def _fullness(capacity: Capacity | None, load: HostLoad) -> float:
    if capacity is None or capacity.cpus <= 0:
        return float(load.containers)
    return load.cpus / capacity.cpus


def choose(hosts: dict[str, tuple[Capacity | None, HostLoad]], demand: Demand,
           prefer: frozenset[str] = frozenset()) -> str | None:
    """The host to place ``demand`` on, or None when none has room.

    ``hosts``: name -> (capacity, load). A preferred host with room wins over any
    other; ties go to the least full host, then to the name (a stable order).
    """
    roomy = [name for name, (capacity, load) in hosts.items() if fits(capacity, load, demand)]
    if not roomy:
        return None
    return min(roomy, key=lambda name: (name not in prefer,
                                        _fullness(*hosts[name]), name))


def no_room_message(hosts: dict[str, tuple[Capacity | None, HostLoad]], demand: Demand) -> str:
    """Why nothing fits: what the container needs and what each host has left."""
    free = []
    for name, (capacity, load) in sorted(hosts.items()):
        if capacity is not None:
            free.append(f"{name}: {capacity.cpus - load.cpus:g} CPUs, "
                        f"{capacity.memory_mb - load.memory_mb:.0f} MB, "
                        f"{capacity.gpus - load.gpus:g} GPUs free")
    needs = f"{demand.cpus:g} CPUs, {demand.memory_mb:.0f} MB, {demand.gpus:g} GPUs"
    return (f"no host in the fleet has room for a container needing {needs} ("
            + ("; ".join(free) or "no hosts") + "); lower max_containers, ask for less "
            "(cpu=, memory=, gpu=), or add nodes with the coldsnap resource")
