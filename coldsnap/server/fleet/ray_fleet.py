"""A fleet on a Ray cluster: one host agent per node that offers the ``coldsnap`` resource.

``start_ray_fleet`` connects the server (the control plane) to the cluster as a Ray
driver, starts an ``AgentService`` actor pinned to each such node (root, CRIU and
the host's dirs are the node's), and keeps watching the cluster: nodes that join
get agents, nodes that leave are lost (their containers' calls end "host lost";
see Fleet.lose), and nodes Ray drains are drained (Fleet.drain): once their
containers ended, their agents stop and Ray lets the node go. Agents outlive the
control plane (ray_agents.py): a restarted one takes them over and keeps the live
containers it finds there for the pools that adopt them (``claim``; takeover.py),
stopping the rest. ``RemoteAgent`` is the control plane's handle on one agent: the
engine's calls go over Ray, a container's streams over TCP (bridge.py).

Ray is an optional dependency (``pip install 'coldsnap[cluster]'``): nothing here
imports it until a cluster is asked for.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from coldsnap.engine import (
    Container,
    ContainerSpec,
    DumpFailed,
    EngineUnavailable,
    SnapshotInfo,
)
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet.agent import Capacity
from coldsnap.server.fleet.bridge import HostLost, SocketContainer
from coldsnap.server.fleet.build_output import ShippedBuilds
from coldsnap.server.fleet.fleet import Fleet
from coldsnap.server.fleet.host_agent import AgentService, ContainerRecord, Outcome
from coldsnap.server.fleet.labels import ContainerLabels, FoundContainer
from coldsnap.server.fleet.placement import Demand
from coldsnap.server.fleet.ray_agents import (
    NAMESPACE,
    agent_fingerprint,
    agent_name,
    agent_settings,
    draining_nodes,
    find_agent,
)
from coldsnap.server.fleet.shared import store_env
from coldsnap.settings import Settings

RESOURCE = "coldsnap"  # the Ray resource that marks a node as a coldsnap host
WATCH_S = 1.0
AGENT_START_S = 120.0  # an agent's engine checks CRIU and cleans leftovers first
CALL_S = 30.0  # a quick call (poll, kill, lookup) that takes longer: the host is stuck
FETCH_S = 600.0  # a fetch from the shared store that takes longer: the host is stuck

logger = logging.getLogger(__name__)


def ray_address(cluster: str) -> str:
    """``ray`` -> "auto" (the cluster this machine is part of); ``ray://HOST:PORT`` ->
    "HOST:PORT", the cluster's GCS address (what `ray start --head` prints)."""
    if cluster == "ray":
        return "auto"
    if cluster.startswith("ray://") and len(cluster) > len("ray://"):
        return cluster[len("ray://"):]
    raise ValueError(f"--cluster {cluster!r} (COLDSNAP_CLUSTER) is not `ray` or "
                     "`ray://HOST:PORT`; leave it empty to run on this host alone")


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
        return container

    def __repr__(self) -> str:
        return f"RemoteAgent({self.host})"


class RayFleet(Fleet):
    """A Fleet whose hosts are the Ray cluster's coldsnap nodes, watched while it runs;
    ``found``: live containers an earlier control plane left on them."""

    def __init__(self, settings: Settings, token: str, agents: list[RemoteAgent],
                 found: list[tuple[RemoteAgent, ContainerRecord]] | None = None) -> None:
        super().__init__(list(agents), store=SnapshotStore(settings.snapshots, agents[0].host_key),
                         default_cpus=settings.container_cpus, name_hosts=True)
        self._settings = settings
        self._token = token
        self._nodes = {a.node_id: a.host for a in agents}
        self._found = {record.container_id: (agent, record) for agent, record in found or []}
        for agent in agents:
            agent.on_lost = self.lose
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="ray-fleet")
        self._watcher.start()

    def close(self) -> None:
        import ray

        self._stopping.set()
        super().close()
        ray.shutdown()

    # containers the control plane before this one left (takeover.py)

    def claim(self, app: str, version: str, tag: str,
              variant: str) -> list[tuple[Container, ContainerLabels]]:
        wanted = (app, version, tag, variant)
        with self._lock:
            picked = [self._found.pop(cid) for cid, (_, record) in list(self._found.items())
                      if record.labels is not None and _identity(record.labels) == wanted]
        claimed = []
        for agent, record in picked:
            labels = ContainerLabels.from_dict(record.labels or {})
            demand = Demand(labels.cpus, labels.memory_mb, labels.gpus)
            with self._lock:
                load = self._loads.get(agent.host)
                if agent.host not in self._agents or load is None:
                    continue  # its host left meanwhile: so did the container
                load.add(demand)
            try:
                container = agent.connect(record)
            except EngineUnavailable as exc:  # connect killed it
                self._release(agent.host, demand)
                logger.warning("could not adopt container %s: %s", record.container_id, exc)
                continue
            self.track(agent.host, demand, container)
            claimed.append((container, labels))
        return claimed

    def found(self) -> list[FoundContainer]:
        with self._lock:
            return [FoundContainer(agent.host, cid, ContainerLabels.from_dict(record.labels)
                                   if record.labels is not None else None)
                    for cid, (agent, record) in self._found.items()]

    def stop_found(self, found: FoundContainer, reason: str) -> None:
        with self._lock:
            agent, _ = self._found.pop(found.container_id, (None, None))
        if agent is None:
            return
        logger.warning("stopping %s: %s", found.describe(), reason)

        def stop() -> None:
            try:
                agent.stop(found.container_id)
            except HostLost:
                pass

        threading.Thread(target=stop, daemon=True, name=f"stop-{found.container_id}").start()

    # the cluster's nodes

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_S):
            try:
                self._sync()
            except Exception:  # the GCS restarting: try again next round
                logger.exception("could not read the Ray cluster's nodes")

    def _sync(self) -> None:
        nodes = coldsnap_nodes()
        draining = draining_nodes()
        for node_id, host in list(self._nodes.items()):
            if node_id not in nodes:
                self._nodes.pop(node_id)
                self.lose(host, f"Ray node {node_id[:12]} left the cluster")
            elif node_id in draining:
                self.drain(host, f"Ray is draining node {node_id[:12]}")
        for agent in self.drained():  # Ray lets the node go once our actor is gone
            threading.Thread(target=agent.close, daemon=True, name="drained-agent").start()
        for node_id, node in nodes.items():
            if node_id not in self._nodes and node_id not in draining \
                    and not self._stopping.is_set():
                agent = self._join(node)
                self._nodes[node_id] = agent.host
                self.add(agent)

    def _join(self, node: dict[str, Any]) -> RemoteAgent:
        agent, records = open_agent(self._settings, node, self._token)
        agent.on_lost = self.lose
        for record in records:  # pools took what they adopt at start: too late for these
            why = "its host joined after this control plane started"
            found = FoundContainer(agent.host, record.container_id, None)
            with self._lock:
                self._found[record.container_id] = (agent, record)
            self.stop_found(found, why)
        return agent


def _identity(labels: dict[str, Any]) -> tuple[str, str, str, str]:
    return (labels.get("app", ""), labels.get("version", ""), labels.get("tag", ""),
            labels.get("variant", ""))


def coldsnap_nodes() -> dict[str, dict[str, Any]]:
    """The cluster's live nodes that offer the coldsnap resource, by node id."""
    import ray

    return {n["NodeID"]: n for n in ray.nodes()
            if n.get("Alive") and (n.get("Resources") or {}).get(RESOURCE, 0) > 0}


def open_agent(settings: Settings, node: dict[str, Any],
               token: str) -> tuple[RemoteAgent, list[ContainerRecord]]:
    """The agent on ``node``: the one the control plane before this one left there, with
    its live containers, else a new one (ray_agents.py)."""
    found = find_agent(settings, node, token)
    if found is None:
        return start_agent(settings, node, token), []
    actor, info, records = found
    return RemoteAgent(actor, node, info, token, settings), records


def start_agent(settings: Settings, node: dict[str, Any], token: str) -> RemoteAgent:
    """Start the agent actor on ``node`` (pinned there, detached: it outlives this control
    plane) and wait until its engine is up."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = node["NodeID"]
    actor_class: Any = ray.remote(AgentService)
    env = store_env(settings)  # the shared store's endpoint and credentials
    actor = actor_class.options(
        name=agent_name(settings, node_id), namespace=NAMESPACE, lifetime="detached",
        num_cpus=0, max_concurrency=256, max_restarts=0,
        runtime_env={"env_vars": env} if env else None,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(agent_settings(settings, node_id), token, agent_fingerprint(settings, node_id))
    info: dict[str, Any] = ray.get(actor.info.remote(), timeout=AGENT_START_S)
    return RemoteAgent(actor, node, info, token, settings)


def start_ray_fleet(settings: Settings) -> RayFleet:
    """Connect to the Ray cluster ``settings.cluster`` names and take over or start an
    agent on each node (but those Ray is draining)."""
    try:
        import ray
    except ImportError:
        raise EngineUnavailable("--cluster ray needs Ray: pip install 'coldsnap[cluster]' "
                                "(scripts/setup.sh installs it)") from None
    address = ray_address(settings.cluster)
    ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
             configure_logging=False)
    token = secrets.token_hex(16)
    draining = draining_nodes()
    opened = [open_agent(settings, node, token) for node_id, node in coldsnap_nodes().items()
              if node_id not in draining]
    if not opened:
        ray.shutdown()
        raise EngineUnavailable(
            f"no node of the Ray cluster at {address} offers the {RESOURCE!r} resource: start "
            "each host with `ray start --address=HEAD:6379 --resources='{\"coldsnap\": 1}'` "
            "(docs/fleet.md)")
    found = [(agent, record) for agent, records in opened for record in records]
    return RayFleet(settings, token, [agent for agent, _ in opened], found)
