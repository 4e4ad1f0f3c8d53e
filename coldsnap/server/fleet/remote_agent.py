"""The control plane's handle on the host agent of one Ray node (ray_fleet.py starts it).

``RemoteAgent`` is a ``HostAgent``: the engine's calls go to the agent actor over Ray
(an engine's exception crosses intact, host_agent.py's ``Outcome``), a container's
streams over TCP (bridge.py), and its web ports directly or through the agent's
relay (web_relay.py). A call the agent does not answer in time means its host is
gone: ``on_lost`` tells the fleet, and the call raises ``HostLost``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coldsnap.engine import Container, ContainerSpec, DumpFailed, EngineUnavailable, SnapshotInfo
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet.agent import Capacity
from coldsnap.server.fleet.bridge import HostLost, SocketContainer
from coldsnap.server.fleet.build_output import ShippedBuilds
from coldsnap.server.fleet.host_agent import ContainerRecord, Outcome
from coldsnap.server.fleet.labels import ContainerLabels
from coldsnap.server.fleet.relay_route import Relay
from coldsnap.server.fleet.web_relay import relay_mode, relay_wanted
from coldsnap.settings import Settings

CALL_S = 30.0  # a quick call (poll, kill, lookup) that takes longer: the host is stuck
FETCH_S = 600.0  # a fetch from the shared store that takes longer: the host is stuck


class RemoteAgent:
    """The control plane's handle on the agent of one Ray node (HostAgent, ContainerHost)."""

    store: SnapshotStore | None = None  # on its host, not here

    def __init__(self, actor: Any, node: dict[str, Any], info: dict[str, Any],
                 token: str, settings: Settings) -> None:
        self._actor = actor
        # An engine call that outlives the engine's own time limit: the host is gone.
        self._start_s = settings.restore_timeout_s + CALL_S
        self._dump_s = settings.dump_timeout_s + CALL_S
        self.node_id: str = node["NodeID"]
        self.host = f"{info['hostname']}/{self.node_id[:8]}"
        self.engine_name = str(info["engine"])
        self.host_key = str(info["host_key"])
        self.isolated = bool(info["isolated"])
        self.store_url = str(info.get("store_url") or "")
        resources = node.get("Resources") or {}
        self.capacity: Capacity | None = Capacity(
            float(resources.get("CPU", 0)), float(resources.get("memory", 0)) / 2**20,
            float(resources.get("GPU", 0)))
        self._bridge = (str(node["NodeManagerAddress"]), int(info["port"]))
        self._token = token
        self._builds = ShippedBuilds(settings, self.host, str(info.get("machine", "")))
        # The gateway reaches its containers' web ports through its relay, or directly.
        self.relay = Relay((self._bridge[0], int(info["relay_port"])), token) if relay_wanted(
            relay_mode(settings), self._bridge[0], _plane_ip()) else None
        # (host, reason): the fleet's ``lose``, called on the first sign the host is gone.
        self.on_lost: Callable[[str, str], None] = lambda host, reason: None

    def _call(self, method: str, *args: Any, timeout: float = CALL_S) -> Any:
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

        try:
            return ray.get(getattr(self._actor, method).remote(*args), timeout=timeout)
        except (RayActorError, ActorUnavailableError) as exc:
            reason = (f"host {self.host} (Ray node {self.node_id[:12]}) is gone "
                      f"({type(exc).__name__})")
        except GetTimeoutError:
            reason = f"host {self.host} did not answer {method} within {timeout:g} s"
        self.on_lost(self.host, reason)
        raise HostLost(reason)

    def _engine(self, method: str, *args: Any, timeout: float) -> Any:
        outcome: Outcome = self._call(method, *args, timeout=timeout)
        return outcome.unwrap()

    # HostAgent

    def start(self, spec: ContainerSpec) -> Container:
        return self.connect(self._builds.start(  # a build's files travel: build_output.py
            spec, lambda method, *args: self._engine(method, *args, timeout=self._start_s)))

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        return self.connect(self._engine("restore", key, spec, timeout=self._start_s))

    def checkpoint(self, container: Container, key: str, labels: dict[str, str] | None,
                   warnings: list[dict[str, str]] | None) -> SnapshotInfo:
        try:
            info: SnapshotInfo = self._engine("checkpoint", container.id, key, labels, warnings,
                                              timeout=self._dump_s)
        except HostLost as exc:  # the snapshot may be fine elsewhere: try again later
            raise DumpFailed(str(exc), transient=True) from None
        return info

    def lookup(self, key: str) -> SnapshotInfo | None:
        try:
            info: SnapshotInfo | None = self._engine("lookup", key, timeout=CALL_S)
        except HostLost:
            return None
        return info

    def mark_failed(self, key: str, reason: str) -> None:
        try:
            self._engine("mark_failed", key, reason, timeout=CALL_S)
        except HostLost:
            pass

    def failure(self, key: str) -> str | None:
        try:
            reason: str | None = self._engine("failure", key, timeout=CALL_S)
        except HostLost:
            return None
        return reason

    def snapshots_deleted(self) -> None:
        try:
            self._engine("snapshots_deleted", timeout=CALL_S)
        except HostLost:
            pass

    def fetch_remote(self, key: str) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = self._engine("fetch_remote", key, timeout=FETCH_S)
        return answer

    def upload_remote(self, key: str) -> bool:
        return bool(self._engine("upload_remote", key, timeout=CALL_S))

    def layout_secret(self) -> str:
        return str(self._engine("layout_secret", timeout=CALL_S))

    def label(self, container_id: str, labels: ContainerLabels) -> None:
        self._call("label", container_id, labels.to_dict())

    def stop(self, container_id: str, grace_s: float = 5.0) -> None:
        self._call("stop", container_id, grace_s, timeout=grace_s + CALL_S)

    def close(self) -> None:
        import ray

        try:
            ray.get(self._actor.shutdown.remote(), timeout=CALL_S)
        except Exception:  # gone already, or stuck: the kill below ends it
            pass
        ray.kill(self._actor)

    # ContainerHost (what a SocketContainer asks)

    def poll(self, container_id: str) -> int | None:
        code: int | None = self._call("poll", container_id)
        return code

    def kill(self, container_id: str) -> None:
        self._call("kill", container_id)

    def release(self, container_id: str) -> None:
        # Waited for: the container's cleanups run there, and what a build container
        # wrote (keep_upper) must be saved before its builder looks for it, or shipped.
        self._builds.release(container_id, lambda method, *args: self._engine(
            method, *args, timeout=FETCH_S), lambda: self._call("kill", container_id))

    def limits_reached(self, container_id: str) -> list[str]:
        words: list[str] = self._call("limits_reached", container_id)
        return words

    def connect(self, record: ContainerRecord) -> Container:
        try:
            container = SocketContainer(record.container_id, record.pid, self, self._bridge,
                                        self._token, record.timings)
        except OSError as exc:
            self._actor.kill.remote(record.container_id)
            raise EngineUnavailable(f"could not reach host {self.host}'s agent at "
                                    f"{self._bridge[0]}:{self._bridge[1]}: {exc}; the "
                                    "control plane must reach every node over TCP") from None
        container.address = record.address
        container.relay = self.relay
        return container

    def __repr__(self) -> str:
        return f"RemoteAgent({self.host})"



def _plane_ip() -> str:
    """This machine's address as Ray sees it (an agent's node elsewhere has another)."""
    import ray

    return str(ray.util.get_node_ip_address())
