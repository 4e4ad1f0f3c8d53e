"""One settings object for the whole platform.

Every field can be set from the environment with a ``COLDSNAP_`` prefix
(``COLDSNAP_STATE_DIR=/tmp/x``), so tests point each server at its own temp dir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from pathlib import Path
from typing import Any

# Set in the environment of a server that a client started in the background: such
# a server is replaced when a client with other coldsnap code finds it.
EMBEDDED_ENV = "COLDSNAP_EMBEDDED_SERVER"
DEFAULT_STATE_DIR = Path("/var/lib/coldsnap")
# What COLDSNAP_LOG_LEVEL may be (any case), as the logging module names them.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass(frozen=True)
class Settings:
    # Server state: SQLite db, auth token, unix socket, logs. Masked in containers.
    state_dir: Path = DEFAULT_STATE_DIR
    # Snapshot store root (content-addressed); defaults to <state_dir>/snapshots.
    snapshot_dir: Path | None = None
    # Built images (venvs + files layers); defaults to <state_dir>-images, outside
    # the state dir because containers see images and never the state dir.
    image_dir: Path | None = None
    # Base root filesystems (Image.debian_slim) built once per host and shared by
    # every server on it: content-addressed, so servers of any state dir reuse them.
    base_dir: Path = Path("/var/cache/coldsnap/bases")
    # Scratch for running containers (overlay upper dirs, layer mounts): a tmpfs, one
    # per server; defaults to /run/coldsnap, or /run/coldsnap-<hash of state_dir>.
    run_dir: Path | None = None
    # "criu" or "none"; "auto" picks criu where it works.
    engine: str = "auto"
    criu_path: Path = Path("/opt/coldsnap/criu/bin/criu")
    # Optional TCP listen address ("127.0.0.1:7070"); the unix socket is always on.
    tcp: str = ""
    # The HTTP gateway's address (web endpoints: docs/web.md); port 0 picks a free
    # one; "off": no gateway.
    http: str = "127.0.0.1:8000"
    # The dashboard's own address, used only while the gateway is off (COLDSNAP_HTTP=off;
    # else it is on the gateway, under /dashboard): HOST:PORT, port 0 picks a free one
    # (`coldsnap dashboard` prints it); "off": no dashboard. docs/dashboard.md.
    dashboard: str = "127.0.0.1:0"
    # The largest request body the gateway passes on (413 above it).
    http_max_body_bytes: int = 256 * 1024 * 1024
    dump_timeout_s: float = 120.0
    # After a dump fails for a passing cause (CRIU killed, a timeout, a full store),
    # the key's next dump waits this long, doubled per consecutive such failure, up
    # to dump_retry_max_s; boots meanwhile go without a snapshot.
    dump_retry_s: float = 60.0
    dump_retry_max_s: float = 3600.0
    # A cold boot that finds another boot making the snapshot it needs waits this
    # long for it, then boots without a snapshot (0: never wait).
    snapshot_wait_s: float = 120.0
    restore_timeout_s: float = 60.0
    # The most a container's startup may take, whatever its startup_timeout=/timeout=
    # (server/startup_limit.py).
    boot_timeout_s: float = 300.0
    call_timeout_s: float = 600.0
    # How long a client waits for the server to accept it and to answer a request (or,
    # while a call or a deploy runs long, a ping); past it, the error says the server
    # did not answer instead of hanging.
    client_timeout_s: float = 30.0
    max_payload_bytes: int = 512 * 1024 * 1024
    # How long a spawned call's result stays fetchable (`FunctionCall.get`) after the
    # call finished, across server restarts: 7 days, as Modal keeps them. After that
    # `get` says the result expired.
    call_result_ttl_s: float = 7 * 24 * 3600.0
    # Socket connections served at once; one more is answered "busy" and closed.
    max_connections: int = 1000
    # A client connection that sends nothing for this long, between requests or in
    # the middle of one, is closed (a pooled client connects again); 0: never.
    idle_timeout_s: float = 300.0
    keep_versions: int = 3
    prewarm_netns: int = 2
    # Host tuning the criu engine applies at start, like its NAT rule: the
    # transparent huge pages mode. "always" lets CRIU fill a restored heap in
    # 2 MiB pages (big restores ~1.4x faster, see the README); "keep" leaves it.
    host_thp: str = "always"
    # And expedited RCU grace periods: a container joining its cgroups no longer waits
    # ~8 ms for one (engine/rcu.py); "keep" leaves the host's setting.
    host_rcu: str = "expedited"
    # Default limits of every container of the criu engine (0: none); a function's
    # memory=, cpu= and ephemeral_disk= replace them. The memory default is capped at
    # the host's RAM. The disk is an ext4 file under <state_dir>/disks per container
    # (sparse: it takes what was written); with 0 the writable layer lives on the run
    # dir's tmpfs, in RAM.
    container_memory_mb: int = 8192
    container_cpus: float = 0.0
    container_pids: int = 4096
    container_disk_mb: int = 10240
    # "on": containers whose root is an image of their own run in a user namespace,
    # their root an unprivileged uid range of the host (engine/userns.py); "off":
    # as the host's root. from_host() containers never get one (README, Known limits).
    user_namespaces: str = "on"
    # Whose uid range that is (engine/userns.py): "" this server's run dir. A fleet's
    # host agents all get their control plane's (ray_agents.py), so alike hosts share
    # a host key.
    uid_range_owner: str = ""
    # The server's own log (<state_dir>/server.log for a background server): the
    # least severe level written, one of LOG_LEVELS. Container lines are kept apart,
    # per app, for `coldsnap logs`.
    log_level: str = "INFO"
    # Snapshots shared by several hosts (docs/store.md): "s3://BUCKET/PREFIX", the
    # endpoint and credentials from the standard AWS variables (AWS_ENDPOINT_URL,
    # AWS_ACCESS_KEY_ID, ...); "" keeps snapshots on this host only.
    store_url: str = ""
    # The chunks this host fetched from the store, kept for later fetches (LRU), in MB.
    store_cache_mb: int = 10240
    # Parallel transfers to and from the store.
    store_transfers: int = 8
    # Memory kept touched for restores and fetches to start in, in MB (0: off), on VMs
    # that hand freed memory back to their hypervisor; "auto": 1024 MB (at most a
    # sixteenth of the host) on such a VM, else off (engine/warm_memory.py).
    warm_memory_mb: str = "auto"
    # Mixed into the host key: hosts with different salts never share snapshots (an
    # operator's way to keep hosts apart that look alike; tests' "another CPU type").
    host_key_salt: str = ""
    # Snapshot phases without ASLR and with a hash seed per function, so that versions
    # share most pages (and the store keeps them once): "fixed", "random" (as any
    # process), or "auto": fixed when store_url is set (docs/store.md).
    snapshot_layout: str = "auto"
    # "": this host alone. "ray" or "ray://HOST:PORT": the control plane here and a host
    # agent on every node of that Ray cluster offering the coldsnap resource (docs/fleet.md).
    cluster: str = ""
    # Whether a fleet's host agent ships a build container's output (an image layer) to
    # the control plane's image dir: "auto" (when its machine is another), "always",
    # "never" (an image dir shared by every host, e.g. NFS). docs/fleet.md.
    fleet_ship_builds: str = "auto"
    # How a fleet's gateway reaches web endpoints on a host agent: "auto" through the
    # agent's relay when the agent is on another machine, "always" through it, "never"
    # directly (each host's container subnet is routed) (docs/fleet.md).
    fleet_web_relay: str = "auto"

    @property
    def snapshots(self) -> Path:
        return self.snapshot_dir or self.state_dir / "snapshots"

    @property
    def run_path(self) -> Path:
        if self.run_dir is not None:
            return self.run_dir
        if self.state_dir == DEFAULT_STATE_DIR:
            return Path("/run/coldsnap")
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:10]
        return Path(f"/run/coldsnap-{digest}")  # servers of other state dirs: their own

    @property
    def registry_cache(self) -> Path:
        """Images pulled from registries, unpacked: beside the bases, shared host-wide."""
        return self.base_dir.with_name("registry")

    @property
    def images(self) -> Path:
        return self.image_dir or self.state_dir.with_name(self.state_dir.name + "-images")

    def tcp_address(self) -> tuple[str, int]:
        """``tcp`` as (host, port); the host defaults to 127.0.0.1. ValueError if malformed."""
        host, _, port = self.tcp.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"COLDSNAP_TCP={self.tcp!r} is not HOST:PORT "
                             "(e.g. 127.0.0.1:7070)")
        return host or "127.0.0.1", int(port)

    def http_address(self) -> tuple[str, int] | None:
        """``http`` as (host, port), None for "off"; ValueError if malformed."""
        if self.http.strip().lower() == "off":
            return None
        host, _, port = self.http.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"COLDSNAP_HTTP={self.http!r} is not HOST:PORT or off "
                             "(e.g. 127.0.0.1:8000)")
        return host or "127.0.0.1", int(port)

    def dashboard_address(self) -> tuple[str, int] | None:
        """``dashboard`` as (host, port), None for "off"; ValueError if malformed."""
        if self.dashboard.strip().lower() == "off":
            return None
        host, _, port = self.dashboard.rpartition(":")
        if not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"COLDSNAP_DASHBOARD={self.dashboard!r} is not HOST:PORT or off "
                             "(e.g. 127.0.0.1:8001; port 0 picks a free one)")
        return host or "127.0.0.1", int(port)

    def log_level_name(self) -> str:
        """``log_level`` upper-cased; ValueError naming the variable and the valid levels.

        Checked when the server starts rather than here: clients share these settings
        and have no use for the server's log level.
        """
        name = self.log_level.strip().upper()
        if name not in LOG_LEVELS:
            raise ValueError(f"COLDSNAP_LOG_LEVEL={self.log_level!r} is not a log level; "
                             f"use one of {', '.join(LOG_LEVELS)}")
        return name

    @property
    def disks_path(self) -> Path:
        """Containers' writable disks (ext4 image files, loop-mounted under the run dir)."""
        return self.state_dir / "disks"

    @property
    def chunk_cache_path(self) -> Path:
        """Chunks fetched from the shared store (``store_url``), by hash."""
        return self.state_dir / "chunk-cache"

    @property
    def proxy_tokens_path(self) -> Path:
        return self.state_dir / "proxy-tokens.json"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "coldsnap.sock"

    @property
    def token_path(self) -> Path:
        return self.state_dir / "token"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def call_results_path(self) -> Path:
        """Spawned calls' large results, one file each (small ones live in the db)."""
        return self.state_dir / "call-results"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``COLDSNAP_*`` variables, then explicit overrides."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get("COLDSNAP_" + field.name.upper())
            if raw is None:
                continue
            values[field.name] = _parse(field.type, raw, field.name)
        values.update(overrides)
        return cls(**values)


class SettingError(ValueError):
    """A ``COLDSNAP_*`` value that can't work; the message names it and what it may be."""


# Numbers that must be above 0 (the rest of the numbers may also be 0: "off").
_POSITIVE = frozenset({"dump_timeout_s", "restore_timeout_s", "boot_timeout_s",
                       "call_timeout_s", "client_timeout_s", "max_payload_bytes",
                       "call_result_ttl_s", "max_connections", "dump_retry_s",
                       "dump_retry_max_s", "store_transfers"})


def _parse(type_name: Any, raw: str, name: str) -> Any:
    text = str(type_name)
    if "Path" in text:
        return Path(raw) if raw else None
    if text not in ("int", "float"):
        return raw
    variable = f"COLDSNAP_{name.upper()}"
    try:
        value = int(raw) if text == "int" else float(raw)
    except ValueError:
        raise SettingError(f"{variable}={raw!r} is not a valid {text}") from None
    if not math.isfinite(value) or value < 0 or (name in _POSITIVE and value == 0):
        least = "above 0" if name in _POSITIVE else "0 or more"
        raise SettingError(f"{variable}={raw!r} must be a finite number {least}")
    return value
