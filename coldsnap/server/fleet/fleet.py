"""The fleet: every host agent behind the one Engine interface the server drives.

The scheduler, boot policy and snapshot admin talk to an ``Engine``; ``Fleet`` is
that engine for any number of hosts. It places each new container on an agent
(placement.py: capacity, then the hosts holding the snapshot, then the least
loaded), remembers which agent runs it (a checkpoint goes there), and answers
``lookup``/``failure`` for the whole fleet. A single host is a fleet of one
``LocalAgent``: the same path, and no limit of the fleet's own.

Hosts join and leave (``add``, ``lose``): a lost host's containers are told so
(``Container.lose`` where they have it), so their calls end "host lost". A host
being drained (``drain``) gets no new containers, and its containers leave once
their inputs end. ``label`` keeps with each container, on its host, what a
restarted control plane needs to adopt it (labels.py; the Ray fleet finds them).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from coldsnap.engine import (
    Container,
    ContainerSpec,
    DumpFailed,
    EngineUnavailable,
    SnapshotInfo,
    SnapshotMiss,
)
from coldsnap.engine.store import SnapshotStore
from coldsnap.server.fleet.agent import HostAgent, describe
from coldsnap.server.fleet.bridge import HostLost, SocketContainer
from coldsnap.server.fleet.labels import ContainerLabels, FoundContainer
from coldsnap.server.fleet.liveness import HostSlow
from coldsnap.server.fleet.placement import Demand, HostLoad, choose, no_room_message
from coldsnap.server.fleet.shared import FleetFetched, FleetStore
from coldsnap.server.remote_store import FetchFailed

logger = logging.getLogger(__name__)


class SnapshotOutOfReach(SnapshotMiss):
    """The fleet holds the snapshot, but its hosts can't take a container now (full,
    draining, slow): the message says so, and the boot does not call it gone."""


class Fleet:
    """An Engine over host agents (see the module's docstring)."""

    def __init__(self, agents: list[HostAgent], store: SnapshotStore | None = None,
                 default_cpus: float = 0.0, name_hosts: bool = False) -> None:
        if not agents:
            raise EngineUnavailable("the fleet has no hosts: start at least one agent")
        first = agents[0]
        self.name = first.engine_name
        self.host_key = first.host_key
        self.isolated = all(a.isolated for a in agents)
        self._store = store if store is not None else first.store
        self._default_cpus = default_cpus
        # True: each container is told its host's name (boot logs and `apps stats` show it).
        self._name_hosts = name_hosts
        self._lock = threading.Lock()
        self._agents: dict[str, HostAgent] = {}
        self._loads: dict[str, HostLoad] = {}
        self._running: dict[str, tuple[str, Container]] = {}  # container id -> host, it
        self._made: dict[str, str] = {}  # snapshot key -> the host that dumped it
        self._demands: dict[str, Demand] = {}  # container id -> what it takes of its host
        self._draining: dict[str, str] = {}  # host -> why it is being drained
        for agent in agents:
            self.add(agent)

    # hosts

    def add(self, agent: HostAgent) -> None:
        """A host joined: place containers there from now on."""
        with self._lock:
            self._agents[agent.host] = agent
            self._loads.setdefault(agent.host, HostLoad())
        if self._name_hosts:  # a single host's log stays as it was
            logger.info("host %s joined the fleet (engine %s)", agent.host, agent.engine_name)

    def lose(self, host: str, reason: str) -> None:
        """A host left: place nothing there, and end its containers' calls with ``reason``."""
        with self._lock:
            agent = self._agents.pop(host, None)
            self._draining.pop(host, None)
            lost = [c for h, c in self._running.values() if h == host]
        if agent is None:
            return
        logger.warning("host %s left the fleet (%s): %d container(s) lost", host, reason,
                       len(lost))
        for container in lost:
            if isinstance(container, SocketContainer):  # a local one can't lose its host
                container.lose(reason)

    def drain(self, host: str, reason: str) -> None:
        """Place nothing more on ``host``; its containers finish their inputs and leave."""
        with self._lock:
            if host not in self._agents or host in self._draining:
                return
            self._draining[host] = reason
            containers = [c for h, c in self._running.values() if h == host]
        for container in containers:
            container.draining = True
        logger.info("host %s is draining (%s): %d container(s) finish their inputs, no new "
                    "ones start there", host, reason, len(containers))

    def drained(self) -> list[HostAgent]:
        """Draining hosts that no container runs on any more, dropped from the fleet."""
        with self._lock:
            busy = {h for h, _ in self._running.values()}
            done = [h for h in self._draining if h not in busy]
            agents = [self._agents.pop(h) for h in done if h in self._agents]
            for host in done:
                self._draining.pop(host)
        for agent in agents:
            logger.info("host %s is drained: its containers ended; it left the fleet", agent.host)
        return agents

    def hosts(self) -> list[dict[str, Any]]:
        """Each host: name, engine, host key, capacity, and what the fleet placed there."""
        with self._lock:
            agents = list(self._agents.values())
            loads = {h: HostLoad(**vars(load)) for h, load in self._loads.items()}
            draining = set(self._draining)
        return [{**describe(a), "containers": loads[a.host].containers,
                 "cpus_used": loads[a.host].cpus, "draining": a.host in draining}
                for a in agents]

    @property
    def agents(self) -> list[HostAgent]:
        with self._lock:
            return list(self._agents.values())

    # the Engine interface

    @property
    def store(self) -> SnapshotStore | None:
        return self._store

    def start(self, spec: ContainerSpec) -> Container:
        demand = Demand.of(spec, self._default_cpus)
        slow: dict[str, str] = {}  # host -> why this start goes elsewhere (liveness.py)
        while True:  # a host found gone is dropped from the fleet: try the next one
            with self._lock:
                others = frozenset(self._agents) - set(slow) if slow else None
            host = self._place(demand, frozenset(), only=others)
            if host is None:
                raise EngineUnavailable("; ".join(slow.values()) or self._no_room(demand))
            try:
                return self._launch(host, demand, lambda agent: agent.start(spec))
            except HostLost as exc:
                self.lose(host, str(exc))
            except HostSlow as exc:
                slow[host] = str(exc)

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        """Restore on a host that holds ``key``; when none does or all are full, on a host
        with room that fetches it from the shared store first. SnapshotMiss otherwise."""
        demand = Demand.of(spec, self._default_cpus)
        agents = self.agents
        if len(agents) == 1:  # the engine itself says whether it holds the key
            holders = frozenset(a.host for a in agents)
        else:
            holders = frozenset(a.host for a in agents if a.lookup(key) is not None)
        host = self._place(demand, holders, only=holders) if holders else None
        fetched = None
        if host is None:
            host, fetched = self._fetch_for(key, demand, holders)
        try:
            container = self._launch(host, demand, lambda agent: agent.restore(key, spec))
        except HostLost as exc:  # not the snapshot's fault: no pause of the key
            self.lose(host, str(exc))
            raise SnapshotMiss(f"snapshot {key}'s host is gone: {exc}") from None
        except HostSlow as exc:
            raise SnapshotOutOfReach(f"memory snapshot {key} could not be restored now: "
                                     f"{exc}") from None
        if fetched is not None:  # the boot's fetch_s and fetch_bytes (`apps stats`)
            container.timings.update(fetched.timings())
        return container

    def _fetch_for(self, key: str, demand: Demand,
                   holders: frozenset[str]) -> tuple[str, FleetFetched]:
        """A host with room that fetched ``key`` (its room reserved); SnapshotMiss saying
        why when there is no store, no room, or nothing to fetch."""
        why = (f"memory snapshot {key} is on hosts that are full or draining "
               f"({', '.join(sorted(holders))})" if holders
               else f"no host in the fleet holds snapshot {key}")
        miss = SnapshotOutOfReach if holders else SnapshotMiss  # not "gone" (boot.py)
        if self.shared_store() is None:
            raise miss(why + (": " + self._no_room(demand) if holders else ""))
        host = self._place(demand, frozenset(), only=None)
        if host is None:
            raise miss(f"{why}: {self._no_room(demand)}")
        try:
            fetched = self._fetch_on(host, key)
        except (FetchFailed, HostLost, HostSlow) as exc:
            self._release(host, demand)
            raise miss(f"{why}, and host {host} could not fetch it from the "
                       f"shared store: {exc}") from None
        if fetched is None:
            self._release(host, demand)
            raise miss(f"{why}, and the shared store has none for host {host}")
        logger.info("fetched memory snapshot %s from the shared store: %s", key,
                    fetched.describe())
        return host, fetched

    def checkpoint(self, container: Container, key: str, labels: dict[str, str] | None = None,
                   warnings: list[dict[str, str]] | None = None) -> SnapshotInfo:
        with self._lock:
            host, _ = self._running.get(container.id, ("", container))
            agent = self._agents.get(host)
        if agent is None:  # transient: the key's next dump goes to another host
            raise DumpFailed(f"container {container.id} is on no host of the fleet (its "
                             f"host {host or '?'} left)", transient=True)
        info = agent.checkpoint(container, key, labels, warnings)
        with self._lock:
            self._made[key] = host
        return info

    def lookup(self, key: str) -> SnapshotInfo | None:
        for agent in self.agents:
            info = agent.lookup(key)
            if info is not None:
                return info
        return None

    def mark_failed(self, key: str, reason: str) -> None:
        # One record per host (its store); every host keeps it so none retries the key.
        for agent in self.agents:
            agent.mark_failed(key, reason)

    def failure(self, key: str) -> str | None:
        for agent in self.agents:
            reason = agent.failure(key)
            if reason is not None:
                return reason
        return None

    def snapshots_deleted(self) -> None:
        for agent in self.agents:
            agent.snapshots_deleted()

    # the shared store (docs/store.md): each host fetches and uploads its own (shared.py)

    def free_warm_memory(self) -> None:
        """Nothing to do here: each host's fetch frees its own engine's (shared.py)."""

    def shared_store(self) -> FleetStore | None:
        """The boot policy's route to the shared store; None when no host has one."""
        urls = [a.store_url for a in self.agents if a.store_url]
        return FleetStore(self, urls[0]) if urls else None

    def fetch(self, key: str, cpus: float = 0.0, memory_mb: float = 0.0,
              gpu_devices: str = "") -> FleetFetched | None:
        """Fetch ``key`` on the host a restore would go to now (room for a container of
        that size, as Demand.sized reads it; the least loaded), so that ``restore`` finds
        it there. None: the store has none for that host's host key. FetchFailed saying
        why."""
        demand = Demand.sized(cpus, memory_mb, gpu_devices, self._default_cpus)
        with self._lock:
            hosts = {h: (a.capacity, self._loads[h]) for h, a in self._agents.items()
                     if h not in self._draining}
        host = choose(hosts, demand)
        if host is None:
            raise FetchFailed(self._no_room(demand))
        try:
            return self._fetch_on(host, key)
        except (HostLost, HostSlow) as exc:
            raise FetchFailed(str(exc)) from None

    def _fetch_on(self, host: str, key: str) -> FleetFetched | None:
        with self._lock:
            agent = self._agents.get(host)
        if agent is None:
            raise FetchFailed(f"host {host} left the fleet before it could fetch {key}")
        answer = agent.fetch_remote(key)
        return FleetFetched(host, answer, self._name_hosts) if answer is not None else None

    def upload(self, key: str) -> None:
        """Upload ``key`` (in the background) from the host that made it, else from the
        first host that holds it."""
        with self._lock:
            maker = self._agents.get(self._made.pop(key, ""))
        for agent in ([maker] if maker is not None else []) + self.agents:
            try:
                if agent.upload_remote(key):
                    return
            except (HostLost, HostSlow):
                continue
        logger.warning("no host of the fleet holds snapshot %s any more: not uploaded", key)

    def layout_secret(self) -> str:
        """The store's secret of fixed layouts' hash seeds, read through each host with a
        store in turn until one answers; the last one's error when none does."""
        error: Exception | None = None
        for agent in self.agents:
            if agent.store_url:
                try:
                    return agent.layout_secret()
                except Exception as exc:  # slow, lost, or its store unreachable: the next
                    logger.info("host %s could not read the store's layout secret: %s",
                                agent.host, exc)
                    error = exc
        if error is not None:
            raise error
        return ""

    # containers an earlier control plane left on the hosts (the Ray fleet finds them)

    def label(self, container_id: str, labels: ContainerLabels) -> None:
        """Keep ``labels`` with the container on its host, with what it takes there."""
        with self._lock:
            host, _ = self._running.get(container_id, ("", None))
            agent = self._agents.get(host)
            demand = self._demands.get(container_id)
        if agent is None or demand is None:
            return
        try:
            agent.label(container_id, dataclasses.replace(
                labels, cpus=demand.cpus, memory_mb=demand.memory_mb, gpus=demand.gpus))
        except (HostLost, HostSlow):  # its calls will say so
            pass

    def claim(self, app: str, version: str, tag: str,
              variant: str) -> list[tuple[Container, ContainerLabels]]:
        """Found containers of this function version, connected and counted; none here."""
        return []

    def found(self) -> list[FoundContainer]:
        """Found containers nobody claimed yet; none here."""
        return []

    def stop_found(self, found: FoundContainer, reason: str) -> None:
        """Stop a found container nobody adopts (its exit hooks run); nothing here."""

    def close(self) -> None:
        for agent in self.agents:
            try:
                agent.close()
            except Exception:  # one host failing to close must not keep the others open
                logger.exception("host %s failed to close", agent.host)

    # placement

    def _place(self, demand: Demand, prefer: frozenset[str],
               only: frozenset[str] | None) -> str | None:
        """Pick a host and reserve ``demand`` there (under the lock: no two boots race)."""
        with self._lock:
            hosts = {h: (a.capacity, self._loads[h]) for h, a in self._agents.items()
                     if (only is None or h in only) and h not in self._draining}
            host = choose(hosts, demand, prefer)
            if host is not None:
                self._loads[host].add(demand)
            return host

    def _no_room(self, demand: Demand) -> str:
        with self._lock:
            hosts = {h: (a.capacity, self._loads[h]) for h, a in self._agents.items()}
        return no_room_message(hosts, demand)

    def _launch(self, host: str, demand: Demand,
                launch: Callable[[HostAgent], Container]) -> Container:
        with self._lock:
            agent = self._agents.get(host)
        try:
            if agent is None:
                raise EngineUnavailable(f"host {host} left the fleet before the container "
                                        "started; the next boot goes elsewhere")
            container = launch(agent)
        except BaseException:
            self._release(host, demand)
            raise
        self.track(host, demand, container)
        return container

    def track(self, host: str, demand: Demand, container: Container) -> None:
        """Count ``container`` (started on ``host``, its room reserved) until it ends."""
        if self._name_hosts:
            container.host = host
        with self._lock:
            self._running[container.id] = (host, container)
            self._demands[container.id] = demand
            container.draining = host in self._draining
        # Runs last of its cleanups (they pop from the end): the host's room comes back.
        container.cleanups.insert(0, lambda: self._ended(container.id, host, demand))

    def _ended(self, container_id: str, host: str, demand: Demand) -> None:
        with self._lock:
            self._running.pop(container_id, None)
            self._demands.pop(container_id, None)
        self._release(host, demand)

    def _release(self, host: str, demand: Demand) -> None:
        with self._lock:
            load = self._loads.get(host)
            if load is not None:
                load.add(demand, -1)
