"""The shared store (docs/store.md) on a fleet: each host fetches and uploads its own.

Every agent owns a ``RemoteSnapshots`` over its own engine's local store, so a
fetch lands where the restore will run and an upload reads the host that dumped.
The agents answer plain, picklable values (``fetch_here``, ``upload_here``); the
boot policy asks the fleet through ``FleetStore``, which has the methods of
``RemoteSnapshots`` that boot.py uses. One host or many: the same path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Protocol

from coldsnap.engine import Engine
from coldsnap.server.remote_store import RemoteSnapshots, open_remote
from coldsnap.settings import Settings

if TYPE_CHECKING:
    from coldsnap.engine.base import SnapshotInfo
    from coldsnap.server.fleet.fleet import Fleet
    from coldsnap.server.functions import FunctionSpec

HOST_SALT_ENV = "COLDSNAP_HOST_KEY_SALT"


class SharedStore(Protocol):
    """What the boot policy asks of the shared store (RemoteSnapshots or FleetStore)."""

    @property
    def url(self) -> Any: ...

    def fetch(self, key: str) -> Any: ...

    def upload_later(self, info: SnapshotInfo) -> None: ...

    def layout_secret(self) -> str: ...

    def close(self) -> None: ...


def fetch_here(remote: RemoteSnapshots | None, key: str) -> dict[str, Any] | None:
    """An agent's fetch of ``key`` into its own store: the Fetched's timings and words,
    or None (no store, or the store has none). FetchFailed saying why when it can't."""
    if remote is None:
        return None
    fetched = remote.fetch(key)
    if fetched is None:
        return None
    return {"timings": fetched.timings(), "description": fetched.describe()}


def upload_here(remote: RemoteSnapshots | None, engine: Engine, key: str) -> bool:
    """An agent's upload (in the background) of its own snapshot ``key``; False when it
    has no store or no such snapshot."""
    info = engine.lookup(key) if remote is not None else None
    if remote is None or info is None:
        return False
    remote.upload_later(info)
    return True


def store_env(settings: Settings) -> dict[str, str]:
    """The standard AWS variables of the control plane's environment (the store's
    endpoint and credentials), which its agents get too; none without a store."""
    if not settings.store_url:
        return {}
    return {name: value for name, value in os.environ.items() if name.startswith("AWS_")}


def host_settings(settings: Settings) -> Settings:
    """An agent's settings: the control plane's, with this host's own host-key salt when
    its environment sets one (``COLDSNAP_HOST_KEY_SALT`` where ``ray start`` ran)."""
    salt = os.environ.get(HOST_SALT_ENV)
    if salt is None or salt == settings.host_key_salt:
        return settings
    return dataclasses.replace(settings, host_key_salt=salt)


@dataclasses.dataclass(frozen=True)
class FleetFetched:
    """A fetch on one host of the fleet, as boot.py reads it (``timings``, ``describe``)."""

    host: str
    answer: dict[str, Any]
    name_host: bool = False

    def timings(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.answer["timings"].items()}

    def describe(self) -> str:
        where = f" onto host {self.host}" if self.name_host else ""
        return f"{self.answer['description']}{where}"


class FleetStore:
    """The boot policy's shared store on a fleet: fetch on the host the restore will go
    to, upload from the host that made the snapshot (Fleet.fetch, Fleet.upload)."""

    def __init__(self, fleet: Fleet, url: str) -> None:
        self.fleet = fleet
        self.url = url

    def fetch(self, key: str) -> FleetFetched | None:
        return self.fleet.fetch(key)

    def upload_later(self, info: SnapshotInfo) -> None:
        self.fleet.upload(info.key)

    def layout_secret(self) -> str:
        return self.fleet.layout_secret()

    def close(self) -> None:
        """Nothing of its own: each agent closes its store with its engine."""


def fetch_for(store: SharedStore, key: str, fn: FunctionSpec) -> Any:
    """Fetch ``key`` for a container of ``fn``: on a fleet onto a host with room for one
    of its size (``cpu=``, ``memory=``, ``gpu=``), where its restore will go."""
    if not isinstance(store, FleetStore):
        return store.fetch(key)
    return store.fleet.fetch(key, cpus=fn.options.cpu_limit or 0.0,
                             memory_mb=fn.options.memory_limit_mb or 0.0,
                             gpu_devices=fn.gpu_devices() or "")


def shared_store(settings: Settings, engine: Engine) -> SharedStore | None:
    """The store boot.py uses: the fleet's route on a fleet, else this engine's own."""
    from coldsnap.server.fleet.fleet import Fleet

    if isinstance(engine, Fleet):
        return engine.shared_store()
    return open_remote(settings, engine)
