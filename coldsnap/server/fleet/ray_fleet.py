"""A fleet on a Ray cluster: one host agent per node that offers the ``coldsnap`` resource.

``start_ray_fleet`` connects the server (the control plane) to the cluster as a Ray
driver, starts an ``AgentService`` actor pinned to each such node (root, CRIU and
the host's dirs are the node's), and keeps watching the cluster: nodes that join
get agents, nodes that leave are lost (their containers' calls end "host lost";
see Fleet.lose), and nodes Ray drains are drained (Fleet.drain): once their
containers ended, their agents stop and Ray lets the node go. Agents outlive the
control plane (ray_agents.py): a restarted one takes them over and keeps the live
containers it finds there for the pools that adopt them (``claim``; takeover.py),
stopping the rest. ``RemoteAgent`` (remote_agent.py) is the control plane's handle on
one agent. A node whose agent fails to start is logged and tried again later
(``Retries``); the fleet goes on with the others.

Ray is an optional dependency (``pip install 'coldsnap[cluster]'``): nothing here
imports it until a cluster is asked for.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from coldsnap.engine import Container, EngineUnavailable
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet.bridge import HostLost
from coldsnap.server.fleet.fleet import Fleet
from coldsnap.server.fleet.host_agent import AgentService, ContainerRecord
from coldsnap.server.fleet.labels import ContainerLabels, FoundContainer
from coldsnap.server.fleet.placement import Demand
from coldsnap.server.fleet.ray_agents import (
    NAMESPACE,
    agent_fingerprint,
    agent_name,
    agent_settings,
    draining_nodes,
    end_agent,
    find_agent,
)
from coldsnap.server.fleet.remote_agent import RemoteAgent
from coldsnap.server.fleet.shared import store_env
from coldsnap.server.fleet.web_relay import relay_mode
from coldsnap.settings import Settings

RESOURCE = "coldsnap"  # the Ray resource that marks a node as a coldsnap host
WATCH_S = 1.0
AGENT_START_S = 120.0  # an agent's engine checks CRIU and cleans leftovers first
RETRY_S = 2.0  # a node whose agent failed to start: the first wait before the next try
RETRY_MAX_S = 60.0

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
        self._retries = Retries()  # nodes whose agent failed to start
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
                    and not self._stopping.is_set() and self._retries.due(node_id):
                try:
                    agent = self._join(node)
                except Exception as exc:  # the other nodes' rounds go on
                    agent_failed(node_id, exc, self._retries.failed(node_id))
                    continue
                self._retries.forget(node_id)
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


class Retries:
    """When to try again to start the agent of a node where it failed: a wait that
    doubles from RETRY_S up to RETRY_MAX_S (a start may take AGENT_START_S)."""

    def __init__(self) -> None:
        self._next: dict[str, tuple[float, float]] = {}  # node id -> (when, the last wait)

    def due(self, node_id: str) -> bool:
        when, _ = self._next.get(node_id, (0.0, 0.0))
        return time.monotonic() >= when

    def failed(self, node_id: str) -> float:
        """Note a failure; the seconds until the next try."""
        _, wait = self._next.get(node_id, (0.0, RETRY_S / 2))
        wait = min(wait * 2, RETRY_MAX_S)
        self._next[node_id] = (time.monotonic() + wait, wait)
        return wait

    def forget(self, node_id: str) -> None:
        self._next.pop(node_id, None)


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
    try:
        info: dict[str, Any] = ray.get(actor.info.remote(), timeout=AGENT_START_S)
    except Exception:  # its name must come free for the next try
        end_agent(actor, agent_name(settings, node_id))
        raise
    return RemoteAgent(actor, node, info, token, settings)


def start_ray_fleet(settings: Settings) -> RayFleet:
    """Connect to the Ray cluster ``settings.cluster`` names and take over or start an
    agent on each node (but those Ray is draining). A node whose agent fails to start
    is logged and tried again by the watcher; the start fails only when none starts."""
    try:
        import ray
    except ImportError:
        raise EngineUnavailable("--cluster ray needs Ray: pip install 'coldsnap[cluster]' "
                                "(scripts/setup.sh installs it)") from None
    relay_mode(settings)  # a wrong COLDSNAP_FLEET_WEB_RELAY fails the start, saying so
    address = ray_address(settings.cluster)
    ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
             configure_logging=False)
    token = secrets.token_hex(16)
    draining = draining_nodes()
    nodes = {n: node for n, node in coldsnap_nodes().items() if n not in draining}
    opened, failed = [], {}
    for node_id, node in nodes.items():
        try:
            opened.append(open_agent(settings, node, token))
        except Exception as exc:
            failed[node_id] = agent_failed(node_id, exc)
    if not opened:
        ray.shutdown()
        if failed:
            raise EngineUnavailable(f"no agent could start on the Ray cluster at {address}: "
                                    + "; ".join(failed.values()))
        raise EngineUnavailable(
            f"no node of the Ray cluster at {address} offers the {RESOURCE!r} resource: start "
            "each host with `ray start --address=HEAD:6379 --resources='{\"coldsnap\": 1}'` "
            "(docs/fleet.md)")
    found = [(agent, record) for agent, records in opened for record in records]
    return RayFleet(settings, token, [agent for agent, _ in opened], found)


def agent_failed(node_id: str, exc: BaseException, retry_s: float = 0.0) -> str:
    """Log that the agent on ``node_id`` did not start; the words for an error message."""
    why = f"Ray node {node_id[:12]}: {type(exc).__name__}: {exc}"
    when = f"in {retry_s:g} s" if retry_s else "on the watcher's next round"
    logger.warning("could not start the agent on %s; the fleet goes on without that host "
                   "and tries again %s", why, when)
    return why
