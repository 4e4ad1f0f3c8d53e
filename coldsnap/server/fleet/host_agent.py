"""The host agent's own side: runs on a node (a Ray actor) and owns that host's engine.

``AgentService`` builds the host's engine from the settings the control plane
sent (its own state, run and snapshot dirs), starts, checkpoints and restores
containers with it, and bridges each container's pipes to the control plane's
connections (bridge.py). It becomes a subreaper, as the server does, so that the
restored containers reparented to it are reaped.

The agent is a detached Ray actor: it outlives the control plane that started it,
so that a restarted control plane finds it by name (ray_fleet.py), takes its
containers back (``reattach``: fresh bridges, the new control plane's token) and
adopts those it still has a use for (takeover.py). ``label`` keeps, per container, what
such a control plane needs to serve with it (app, version, tag, boot).

Every engine call answers an ``Outcome``: the value, or the engine's exception
carried by class, args and attributes (exceptions with constructors of their own,
such as ``SnapshotDamaged``, don't survive plain pickling; ``transient`` must).
"""

from __future__ import annotations

import dataclasses
import pickle
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap.engine import Container, ContainerSpec, SnapshotInfo, make_engine
from coldsnap.server.fleet.bridge import BridgeListener, PipeBridge
from coldsnap.server.fleet.build_inputs import BuildInputs
from coldsnap.server.fleet.build_output import BuildOutputs, machine_identity
from coldsnap.server.fleet.shared import fetch_here, host_settings, upload_here
from coldsnap.server.fleet.web_relay import WebRelay
from coldsnap.server.host_snapshots import store_listing
from coldsnap.server.images.from_store import fetch_missing_images
from coldsnap.server.process import ZombieReaper, become_subreaper
from coldsnap.server.remote_store import open_remote
from coldsnap.server.remote_store.images import open_remote_images
from coldsnap.settings import Settings
from coldsnap.wire import control
from coldsnap.wire.framing import write_message


@dataclasses.dataclass(frozen=True)
class Outcome:
    """An agent call's answer: ``value``, or ``error`` as (class, args, attributes)."""

    value: Any = None
    error: tuple[type[BaseException], tuple[Any, ...], dict[str, Any]] | None = None

    @classmethod
    def of(cls, call: Callable[[], Any]) -> Outcome:
        try:
            return cls(value=call())
        except Exception as exc:
            args = exc.args
            if isinstance(exc, OSError) and exc.filename is not None:  # not in its args
                args = (exc.errno, exc.strerror, exc.filename)
            error = (type(exc), args, dict(vars(exc)))
            try:
                pickle.dumps(error)
            except Exception:  # something in it won't travel: keep the words
                error = (RuntimeError, (f"{type(exc).__name__}: {exc}",), {})
            return cls(error=error)

    def unwrap(self) -> Any:
        if self.error is None:
            return self.value
        kind, args, attributes = self.error
        exc: BaseException | None = None
        try:  # an OSError made anew: its words name the errno and the file
            exc = kind(*args) if issubclass(kind, OSError) else None
        except TypeError:  # a constructor of its own
            pass
        if exc is None:
            exc = kind.__new__(kind)
            exc.args = args
        exc.__dict__.update(attributes)
        raise exc


@dataclasses.dataclass(frozen=True)
class ContainerRecord:
    """A container the agent started, as the control plane needs it."""

    container_id: str
    pid: int
    address: str  # its network's address (web endpoints' ports)
    timings: dict[str, float]
    # What the control plane that booted it said about it (ContainerLabels.to_dict());
    # None: it never said (the container was still booting).
    labels: dict[str, Any] | None = None


class AgentService:
    """One host's engine and containers, driven by the control plane (see the module)."""

    def __init__(self, settings: Settings, token: str, fingerprint: str = "") -> None:
        self.fingerprint = fingerprint  # its control plane's code and settings (ray_agents.py)
        settings = host_settings(settings)  # this host's own host-key salt, if it has one
        become_subreaper()
        self._reaper = ZombieReaper()
        self._reaper.start()
        for path in (settings.state_dir, settings.snapshots):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.engine = make_engine(settings)
        self.remote = open_remote(settings, self.engine)  # over this host's own store
        self.images = open_remote_images(settings)  # images this host lacks, from the store
        self._images_dir = settings.images
        self._images_dir.mkdir(parents=True, exist_ok=True)  # its identity: build_output.py
        self.outputs = BuildOutputs(settings.state_dir / "build-output")  # build_output.py
        self.inputs = BuildInputs(settings.state_dir / "build-input")  # build_inputs.py
        self._listener = BridgeListener(token)
        self._containers: dict[str, Container] = {}
        self._labels: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        # Web requests from a gateway on another machine (web_relay.py); same token.
        self._relay = WebRelay(lambda: self._listener.token, self._address_of)

    def info(self) -> dict[str, Any]:
        return {"engine": self.engine.name, "host_key": self.engine.host_key,
                "isolated": self.engine.isolated, "hostname": socket.gethostname(),
                "port": self._listener.port, "relay_port": self._relay.port,
                "fingerprint": self.fingerprint,
                "store_url": str(self.remote.url) if self.remote is not None else "",
                "machine": machine_identity(self._images_dir)}

    # engine calls

    def start(self, spec: ContainerSpec) -> Outcome:
        return Outcome.of(lambda: self._adopt(self.engine.start(self._images_here(spec))))

    def restore(self, key: str, spec: ContainerSpec) -> Outcome:
        return Outcome.of(lambda: self._adopt(self.engine.restore(key,
                                                                  self._images_here(spec))))

    def checkpoint(self, container_id: str, key: str, labels: dict[str, str] | None,
                   warnings: list[dict[str, str]] | None) -> Outcome:
        return Outcome.of(lambda: self._checkpoint(container_id, key, labels, warnings))

    # a build container whose output the control plane fetches (build_output.py)

    def start_build(self, spec: ContainerSpec) -> Outcome:
        return Outcome.of(lambda: self._adopt(self.outputs.start(
            spec, lambda staged: self.engine.start(self._images_here(staged)))))

    def pack_output(self, container_id: str) -> Outcome:
        return Outcome.of(lambda: self.outputs.pack(container_id))

    def read_output(self, container_id: str, offset: int, size: int) -> Outcome:
        return Outcome.of(lambda: self.outputs.read(container_id, offset, size))

    def drop_output(self, container_id: str) -> Outcome:
        return Outcome.of(lambda: self.outputs.drop(container_id))

    def lacks_paths(self, paths: list[str]) -> Outcome:
        return Outcome.of(lambda: self.inputs.lacks(paths))

    def receive_input(self, sent: str, offset: int, data: bytes) -> Outcome:
        return Outcome.of(lambda: self.inputs.receive(sent, offset, data))

    def place_input(self, sent: str, target: str, size: int, sha256: str) -> Outcome:
        return Outcome.of(lambda: self.inputs.place(sent, target, size, sha256))

    def lookup(self, key: str) -> Outcome:
        return Outcome.of(lambda: self.engine.lookup(key))

    def mark_failed(self, key: str, reason: str) -> Outcome:
        return Outcome.of(lambda: self.engine.mark_failed(key, reason))

    def failure(self, key: str) -> Outcome:
        return Outcome.of(lambda: self.engine.failure(key))

    def snapshots_deleted(self) -> Outcome:
        return Outcome.of(self.engine.snapshots_deleted)

    def snapshots(self) -> Outcome:  # `coldsnap snapshots ls` on a fleet
        return Outcome.of(lambda: store_listing(self.engine.store))

    def fetch_remote(self, key: str) -> Outcome:
        return Outcome.of(lambda: fetch_here(self.remote, key))

    def upload_remote(self, key: str) -> Outcome:
        return Outcome.of(lambda: upload_here(self.remote, self.engine, key))

    def layout_secret(self) -> Outcome:
        return Outcome.of(lambda: self.remote.layout_secret() if self.remote else "")

    # containers

    def poll(self, container_id: str) -> int | None:
        with self._lock:
            container = self._containers.get(container_id)
        return -1 if container is None else container.poll()

    def kill(self, container_id: str) -> None:
        """Kill it and let go of its pipes and dirs (also once it exited by itself)."""
        with self._lock:
            container = self._containers.pop(container_id, None)
            self._labels.pop(container_id, None)
        bridge = self._listener.remove(container_id)
        if bridge is not None:
            bridge.close()
        if container is not None:
            container.kill()

    def label(self, container_id: str, labels: dict[str, Any]) -> None:
        """Keep what the control plane needs to adopt the container after a restart."""
        with self._lock:
            if container_id in self._containers:
                self._labels[container_id] = labels

    def reattach(self, token: str) -> list[ContainerRecord]:
        """A new control plane took over: its token from now on, a fresh bridge per live
        container (the old one's connections died with it), and what each is."""
        self._listener.token = token
        with self._lock:
            containers = dict(self._containers)
        records = []
        for container_id, container in containers.items():
            old = self._listener.remove(container_id)
            if old is not None:
                old.close()
            if container.poll() is not None:
                self.kill(container_id)  # exited meanwhile: its dirs go now
                continue
            self._listener.register(PipeBridge(container))
            with self._lock:
                labels = self._labels.get(container_id)
            records.append(ContainerRecord(container.id, container.pid, container.address,
                                           dict(container.timings), labels))
        return records

    def stop(self, container_id: str, grace_s: float = 5.0) -> None:
        """Ask a container nobody serves with for a clean exit (its exit hooks run),
        then kill it after ``grace_s``."""
        with self._lock:
            container = self._containers.get(container_id)
        bridge = self._listener.remove(container_id)
        if bridge is not None:
            bridge.close()
        if container is not None:
            try:
                write_message(container.ctrl_in, {control.TYPE: control.SHUTDOWN})
            except (OSError, ValueError):  # gone already
                pass
            deadline = time.monotonic() + grace_s
            while container.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        self.kill(container_id)

    def container_count(self) -> int:
        with self._lock:
            return len(self._containers)

    def limits_reached(self, container_id: str) -> list[str]:
        with self._lock:
            container = self._containers.get(container_id)
        return [] if container is None else container.limits_reached()

    def shutdown(self) -> None:
        with self._lock:
            ids = list(self._containers)
        for container_id in ids:
            self.kill(container_id)
        self._listener.close()
        self._relay.close()
        if self.remote is not None:
            self.remote.close()
        self.engine.close()
        self._reaper.stop()

    def _address_of(self, container_id: str) -> str | None:
        with self._lock:
            container = self._containers.get(container_id)
        return None if container is None else container.address

    def _images_here(self, spec: ContainerSpec) -> ContainerSpec:
        """``spec``, once the image files it names are on this host (docs/store.md)."""
        fetch_missing_images(self.images, spec)
        return spec

    def _adopt(self, container: Container) -> ContainerRecord:
        with self._lock:
            self._containers[container.id] = container
        self._listener.register(PipeBridge(container))
        return ContainerRecord(container.id, container.pid, container.address,
                               dict(container.timings))

    def _checkpoint(self, container_id: str, key: str, labels: dict[str, str] | None,
                    warnings: list[dict[str, str]] | None) -> SnapshotInfo:
        bridge = self._listener.find(container_id)
        if bridge is not None:
            bridge.stop()  # the dump takes the pipes as they are: nobody may read them now
        with self._lock:
            container = self._containers[container_id]
        return self.engine.checkpoint(container, key, labels=labels, warnings=warnings)
