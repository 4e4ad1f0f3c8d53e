"""What the control plane asks of one host: a host agent, and the in-process one.

A host agent owns one host's engine (criu or none), the containers it runs and its
local snapshot store. The fleet (fleet.py) places containers on agents and routes
the engine's other calls to them. ``LocalAgent`` is the agent of the host the
server runs on, in its own process: the single-host default is a fleet of one
LocalAgent. ``RemoteAgent`` (remote_agent.py) reaches an agent on another node.
"""

from __future__ import annotations

import dataclasses
import socket
from typing import Any, Protocol

from coldsnap.engine import Container, ContainerSpec, Engine, SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet.labels import ContainerLabels
from coldsnap.server.fleet.relay_route import Relay
from coldsnap.server.fleet.shared import fetch_here, upload_here
from coldsnap.server.remote_store import RemoteSnapshots


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What a host offers containers: CPUs, memory and GPUs (Ray's node resources)."""

    cpus: float
    memory_mb: float
    gpus: float = 0.0


class HostAgent(Protocol):
    """One host's engine, as the fleet sees it: every member the fleet uses."""

    host: str  # a name for the host in logs and `apps stats` (hostname or node id)
    engine_name: str
    host_key: str
    isolated: bool
    # What the host offers; None: no limit of the fleet's own (the engine's limits hold).
    capacity: Capacity | None
    store_url: str  # its shared store (docs/store.md), "" when it has none
    # Its relay, when the gateway reaches its containers' web ports through it
    # (web_relay.py); None: directly, at each container's address.
    relay: Relay | None

    @property
    def store(self) -> SnapshotStore | None: ...

    def start(self, spec: ContainerSpec) -> Container: ...

    def restore(self, key: str, spec: ContainerSpec) -> Container: ...

    def checkpoint(self, container: Container, key: str, labels: dict[str, str] | None,
                   warnings: list[dict[str, str]] | None) -> SnapshotInfo: ...

    def lookup(self, key: str) -> SnapshotInfo | None: ...

    def mark_failed(self, key: str, reason: str) -> None: ...

    def failure(self, key: str) -> str | None: ...

    def snapshots_deleted(self) -> None: ...

    def fetch_remote(self, key: str) -> dict[str, Any] | None: ...

    def upload_remote(self, key: str) -> bool: ...

    def layout_secret(self) -> str: ...

    def label(self, container_id: str, labels: ContainerLabels) -> None: ...

    def close(self) -> None: ...


class LocalAgent:
    """The agent of this host, in this process: the engine's calls, unchanged."""

    capacity: Capacity | None = None  # the engine's own limits hold; the fleet adds none
    relay: Relay | None = None  # its containers are this host's: reached directly

    def __init__(self, engine: Engine, host: str = "",
                 remote: RemoteSnapshots | None = None) -> None:
        self.engine = engine
        self.remote = remote  # the shared store over this engine's store (fleet/shared.py)
        self.store_url = str(remote.url) if remote is not None else ""
        self.host = host or socket.gethostname()
        self.engine_name = engine.name
        self.host_key = engine.host_key
        self.isolated = engine.isolated

    @property
    def store(self) -> SnapshotStore | None:
        return self.engine.store

    def start(self, spec: ContainerSpec) -> Container:
        return self.engine.start(spec)

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        return self.engine.restore(key, spec)

    def checkpoint(self, container: Container, key: str, labels: dict[str, str] | None,
                   warnings: list[dict[str, str]] | None) -> SnapshotInfo:
        return self.engine.checkpoint(container, key, labels=labels, warnings=warnings)

    def lookup(self, key: str) -> SnapshotInfo | None:
        return self.engine.lookup(key)

    def mark_failed(self, key: str, reason: str) -> None:
        self.engine.mark_failed(key, reason)

    def failure(self, key: str) -> str | None:
        return self.engine.failure(key)

    def snapshots_deleted(self) -> None:
        self.engine.snapshots_deleted()

    def fetch_remote(self, key: str) -> dict[str, Any] | None:
        return fetch_here(self.remote, key)

    def upload_remote(self, key: str) -> bool:
        return upload_here(self.remote, self.engine, key)

    def layout_secret(self) -> str:
        return self.remote.layout_secret() if self.remote is not None else ""

    def label(self, container_id: str, labels: ContainerLabels) -> None:
        pass  # its containers end with this process: nobody will adopt them

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()  # an upload cut short: the next start does it again
        self.engine.close()

    def __repr__(self) -> str:
        return f"LocalAgent({self.host}, {self.engine!r})"


def describe(agent: HostAgent) -> dict[str, Any]:
    """One line of `coldsnap status`'s hosts: name, engine, host key, capacity, and the
    relay its web requests go through ("": directly)."""
    capacity = dataclasses.asdict(agent.capacity) if agent.capacity else None
    relay = "{}:{}".format(*agent.relay.address) if agent.relay is not None else ""
    return {"host": agent.host, "engine": agent.engine_name, "host_key": agent.host_key,
            "capacity": capacity, "web_relay": relay}
