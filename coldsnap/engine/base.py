"""What every snapshot engine offers the server: containers, checkpoints, restores.

The engine knows nothing about Apps. The server hands it a ContainerSpec (what
to run, with which environment and files) and gets Containers back: a process
tree with two control pipes and one log pipe.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:  # store.py imports this module
    from coldsnap.engine.store import SnapshotStore


def new_container_id() -> str:
    """A fresh container id: the server's logs, the engine's dirs and cgroups all use it."""
    return "cs-" + uuid.uuid4().hex[:10]


class SnapshotError(Exception):
    """A dump or restore failed; ``log_tail`` holds the end of CRIU's own log.

    ``transient`` is True when the snapshot itself is probably fine (a timeout,
    a killed CRIU, a full run dir): worth another try later, never quarantined.
    """

    def __init__(self, message: str, log_tail: str = "", transient: bool = False) -> None:
        super().__init__(message + (f"\n--- criu log (tail) ---\n{log_tail}" if log_tail else ""))
        self.reason = message
        self.log_tail = log_tail
        self.transient = transient


class DumpFailed(SnapshotError):
    pass


class RestoreFailed(SnapshotError):
    pass


class RunDirInUse(RuntimeError):
    """Another live server holds the run dir: each server needs one of its own."""


class EngineUnavailable(RuntimeError):
    """The engine asked for can't run on this host; the message says why and what to do."""


class SnapshotMiss(LookupError):
    """No usable snapshot for this key on this host (absent, failed, corrupt, other host)."""


class SnapshotDamaged(SnapshotMiss):
    """An image file's size or bytes changed after the snapshot was published.

    The engine has quarantined the snapshot (``quarantined_to``, kept for a
    post-mortem) without marking the key failed: the snapshot was made fine and
    lost its bytes later, so a new one may be made. ``file`` names the file.
    """

    def __init__(self, key: str, file: str, problem: str, quarantined_to: Path | None) -> None:
        where = f" to {quarantined_to}" if quarantined_to else ""
        super().__init__(f"snapshot {key} is damaged: image file {file} {problem}; "
                         f"quarantined{where}")
        self.key = key
        self.file = file
        self.problem = problem
        self.quarantined_to = quarantined_to


class SnapshotStale(SnapshotDamaged):
    """A file on a volume that the snapshot holds open changed size since the dump, and
    CRIU restores an open file only at its dumped size. Quarantined like a damaged
    snapshot, its key not marked failed: the next cold boot makes a new snapshot."""

    def __init__(self, key: str, file: str, quarantined_to: Path | None) -> None:
        super().__init__(key, file, "changed size", quarantined_to)
        self.args = (f"snapshot {key} holds {file} open, a file on a volume that changed "
                     "size since the snapshot was made (CRIU restores an open file only at "
                     "its size then)",)


@dataclasses.dataclass
class ContainerSpec:
    """What to run. ``files`` land in the container under ``code_dir`` (see env)."""

    argv: list[str]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    # Relative path -> contents. The engine writes them below a directory it
    # picks and tells the runtime where through COLDSNAP_CODE_DIR.
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    # Extra read-only lower layers for the root filesystem (image files, @build output).
    layers: list[Path] = dataclasses.field(default_factory=list)
    # The image's root filesystem, below every layer (a Debian base, an OCI image's
    # rootfs); None: the host's "/" (Image.from_host()).
    base: Path | None = None
    # Host paths a build container sees read-only at the same path (the host's pip
    # configuration and the wheel dirs it names). Never in a snapshot.
    binds: tuple[str, ...] = ()
    # Volumes: container path -> host directory, bind-mounted read-write, in the
    # snapshot phase and after a restore alike (volume_mounts.py).
    volumes: dict[str, Path] = dataclasses.field(default_factory=dict)
    # True: the snapshot phase (GPUs hidden).
    snapshot_phase: bool = False
    # True: no address space randomization, so that snapshots of two versions of a
    # function share most pages (the shared store stores those once: docs/store.md).
    fixed_layout: bool = False
    # True: no network but loopback, in every phase (Modal's block_network).
    block_network: bool = False
    # Limits; 0 means the server's default (COLDSNAP_CONTAINER_*).
    memory_mb: int = 0
    cpus: float = 0.0
    disk_mb: int = 0
    # Directory the container may write that survives it (an image build's output).
    keep_upper: Path | None = None
    # Opt-in: keep GPUs visible in the snapshot phase and snapshot GPU memory
    # through the CUDA checkpoint API (engine/gpu.py).
    gpu_snapshot: bool = False
    # Working directory inside the container; "" means the code dir (where files land).
    cwd: str = ""
    # The id the server knows the container by; the engine names its dirs after it.
    container_id: str = dataclasses.field(default_factory=new_container_id)


@dataclasses.dataclass
class SnapshotInfo:
    key: str
    host_key: str
    path: Path
    size_bytes: int
    dump_s: float
    created_at: float
    criu_version: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Container:
    """A running container: its root pid and the server's ends of its pipes."""

    def __init__(
        self,
        container_id: str,
        pid: int,
        ctrl_in: BinaryIO,
        ctrl_out: BinaryIO,
        logs: BinaryIO,
        timings: dict[str, float] | None = None,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.id = container_id
        self.pid = pid
        self.ctrl_in = ctrl_in
        self.ctrl_out = ctrl_out
        self.logs = logs
        self.timings = dict(timings or {})
        self.started_at = time.monotonic()
        self.returncode: int | None = None
        # The address the host reaches the container's own network at (its web
        # endpoints' ports): its namespace's, or loopback for the host's network.
        self.address = "127.0.0.1"
        # The host it runs on, as the fleet names it ("" on a single host): boot logs
        # and `apps stats` show it (coldsnap/server/fleet).
        self.host = ""
        # True once its host is being drained (coldsnap/server/fleet): it takes no new
        # inputs and leaves when idle.
        self.draining = False
        # Set when the root's parent is a process we started (unshare): wait on it.
        self.process = process
        self.cleanups: list[Any] = []  # callables run once the container is gone
        # Words for each limit it hit since the last ask (out of memory, too many
        # processes, a full disk), when the engine can tell.
        self.limits_reached: Callable[[], list[str]] = lambda: []

    def poll(self) -> int | None:
        """The exit status once the root process is gone, else None (reaps it)."""
        if self.returncode is None and self.process is not None:
            self.returncode = self.process.poll()
        elif self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Not our child (or already reaped): alive while /proc has it.
                if not Path(f"/proc/{self.pid}").exists():
                    self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(5)
        self.close()

    def close(self) -> None:
        for stream in (self.ctrl_in, self.ctrl_out, self.logs):
            try:
                stream.close()
            except OSError:
                pass
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception:  # best effort: a leftover mount must not stop shutdown
                pass


class Engine(Protocol):
    """What the server asks of a snapshot engine: every member any caller uses.

    ``none`` (none_engine.py) and ``criu`` (criu_engine.py) satisfy it; mypy checks
    that through the factories in ``coldsnap/engine/__init__.py``, which return them
    as ``Engine``. A caller never probes an engine with ``getattr``: what one engine
    lacks has a typed answer here (the ``none`` engine's ``store`` is None).

    Failure records: ``mark_failed`` and ``failure`` write and read the one record
    of a key's permanent failure (the store's ``failed/<key>.json``). The engine
    keeps it; the server's policy (``SnapshotKeys`` in server/snapshot_keys.py) decides
    when to consult it, once per boot. ``lookup`` and ``restore`` don't.
    """

    name: str  # the name ENGINES knows it by: "none", "criu"
    host_key: str  # which hosts can restore this host's snapshots (same CPU, kernel, CRIU)
    # True when each container has a root filesystem of its own: what it writes (image
    # files, @build output) lands there, never on the host's filesystem.
    isolated: bool

    @property
    def store(self) -> SnapshotStore | None:
        """This host's snapshot store, or None for an engine that takes no snapshots."""
        ...

    def start(self, spec: ContainerSpec) -> Container:
        """Start a fresh container (a plain cold boot, or a snapshot phase)."""
        ...

    def checkpoint(
        self, container: Container, key: str, labels: dict[str, str] | None = None,
        warnings: list[dict[str, str]] | None = None,
    ) -> SnapshotInfo:
        """Dump ``container`` into the store under ``key``; the container is gone after.

        ``labels`` (app, function, version) are kept in the metadata; garbage
        collection keeps the newest snapshots of each (app, function). ``warnings``
        (wire/snapshot_warnings.py) are kept there too. Raises DumpFailed.
        """
        ...

    def restore(self, key: str, spec: ContainerSpec) -> Container:
        """Start a copy of the snapshot ``key``; raises SnapshotMiss or RestoreFailed.

        Every image file is checked against its size and digest before the copy is
        returned (so before it is resumed). One that doesn't match raises
        SnapshotDamaged: the snapshot is quarantined, its key not marked failed. A
        snapshot CRIU rejects with intact files is quarantined and its key marked
        failed.
        """
        ...

    def lookup(self, key: str) -> SnapshotInfo | None:
        """The stored snapshot for ``key`` on this host, or None (failures aside)."""
        ...

    def mark_failed(self, key: str, reason: str) -> None:
        """Record that ``key`` failed for good and why; it lasts until the key is
        deleted from the store (`coldsnap snapshots rm KEY`)."""
        ...

    def failure(self, key: str) -> str | None:
        """Why ``key`` failed before, or None if it never did (or was deleted since)."""
        ...

    def snapshots_deleted(self) -> None:
        """Snapshots went from the store (rm, gc): free what the engine held for them."""
        ...

    def free_warm_memory(self) -> None:
        """Something is about to fill much new memory outside a container (a snapshot
        fetched from the shared store into the page cache, restored right after): free
        the memory the engine keeps warm for boots, if it keeps any."""
        ...

    def close(self) -> None:
        """Give back what the engine holds on the host; called once, at shutdown."""
        ...
