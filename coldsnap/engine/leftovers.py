"""What a dead server left behind in its run dir and store: found, and removed at start-up.

A server killed with SIGKILL gives nothing back: its containers run on as orphans
(reparented to pid 1), their overlay roots and layer mounts stay mounted under the
run dir, their dirs stay on its tmpfs, its network namespaces stay made, and a dump
it was writing stays in ``<store>/.staging``. The next engine on the same run dir
removes exactly that, and ``coldsnap doctor`` lists it.

What is a dead server's is proved, never guessed, with two locks the live engine
holds for its life (a killed process loses its flocks):

- ``<run dir>/server.lock``, exclusive, holding the engine's pid: whoever gets it
  owns the run dir, so every mount, container dir and container process on it is
  a dead server's; network namespaces are its if their owner file names its pid.
- ``<store>/.server.lock``, shared by every engine on the store: whoever gets it
  exclusive knows no live server is writing a dump, so ``.staging`` is all dead.

A process is a dead server's container if the overlay at its root has its upper
dir under ``<run dir>/containers/``; a ``criu``, ``cp``, ``unshare`` or ``nsenter``
of the engine's if its arguments name a path there or under ``<store>/.staging/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from coldsnap.engine.base import RunDirInUse
from coldsnap.engine.cgroups import group_paths
from coldsnap.engine.netns import NETNS_OWNERS, destroy_namespace
from coldsnap.settings import Settings

RUN_LOCK = "server.lock"
STORE_LOCK = ".server.lock"
# The engine's own tools, the only processes outside a container it may kill.
TOOLS = frozenset({"criu", "cp", "unshare", "nsenter"})
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Leftovers:
    """A dead server's remains; ``busy`` says why a part was not looked at."""

    processes: list[int] = dataclasses.field(default_factory=list)
    mounts: list[Path] = dataclasses.field(default_factory=list)
    containers: list[Path] = dataclasses.field(default_factory=list)
    cgroups: list[Path] = dataclasses.field(default_factory=list)
    netns: list[int] = dataclasses.field(default_factory=list)
    staging: list[Path] = dataclasses.field(default_factory=list)
    staging_bytes: int = 0
    busy: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts or self.containers or self.cgroups
                    or self.netns or self.staging)

    def summary(self) -> str:
        """``2 container processes, 3 mounts, …`` (the parts that are not empty)."""
        parts = [(len(self.processes), "container process", "es"),
                 (len(self.mounts), "mount", "s"),
                 (len(self.containers), "container dir", "s"),
                 (len(self.cgroups), "cgroup", "s"),
                 (len(self.netns), "network namespace", "s"),
                 (len(self.staging), "half-written dump", "s")]
        words = [f"{n} {name}{'' if n == 1 else plural}" for n, name, plural in parts if n]
        if self.staging:
            words[-1] += f" in .staging ({self.staging_bytes / 1e6:.1f} MB)"
        return ", ".join(words) or "nothing"


class RunDirClaim:
    """The engine's hold on its run dir (exclusive) and store (shared), for its life."""

    def __init__(self, run_dir: Path, store: Path) -> None:
        self.run_dir = run_dir
        self.store = store
        self._run_fd = -1
        self._store_fd = -1
        self.holder: int | None = None  # the pid holding the run dir, when not us

    def sweep(self, criu_dir: Path) -> Leftovers:
        """Take both locks and remove what a dead server left; returns what went."""
        found = Leftovers()
        previous = self._lock_run_dir()
        if self._run_fd >= 0:
            _find_in_run_dir(found, self.run_dir, self.store, criu_dir, previous)
        else:
            self.holder = previous
            found.busy.append(f"run dir {self.run_dir} is in use by pid {previous}")
        self.store.mkdir(parents=True, exist_ok=True)
        self._store_fd = os.open(self.store / STORE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        if _try_lock(self._store_fd):
            _find_staging(found, self.store)
        else:
            found.busy.append(f"store {self.store} is in use by another server")
        remove(found)
        fcntl.flock(self._store_fd, fcntl.LOCK_SH)  # from exclusive, or waiting for it
        return found

    @property
    def owns_run_dir(self) -> bool:
        return self._run_fd >= 0

    def release(self) -> None:
        for fd in (self._run_fd, self._store_fd):
            if fd >= 0:
                os.close(fd)
        self._run_fd = self._store_fd = -1

    def _lock_run_dir(self) -> int | None:
        """Lock the run dir and write our pid; returns the pid that was there."""
        fd = os.open(self.run_dir / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        previous = _read_pid(fd)
        if not _try_lock(fd):
            os.close(fd)
            return previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._run_fd = fd
        return previous


def claim_run_dir(settings: Settings) -> RunDirClaim:
    """Claim this server's run dir and remove what a killed server left there and in
    the store, before the layers and network namespaces, which would trip over it.
    RunDirInUse when another live server holds the run dir."""
    claim = RunDirClaim(settings.run_path, settings.snapshots)
    removed = claim.sweep(settings.criu_path.parent.parent)
    if removed:
        logger.info("removed what a killed server left in %s and %s: %s",
                    settings.run_path, settings.snapshots, removed.summary())
    # Another server's containers live there: a sweep by a later start would take
    # ours for its leftovers. (Another engine of this same process, as tests make,
    # shares our fate: let it be.)
    if not claim.owns_run_dir and claim.holder != os.getpid():
        claim.release()
        raise RunDirInUse(
            f"the run dir {settings.run_path} is in use by another coldsnap server "
            f"({removed.busy[0]}): each server needs a run dir of its own. Set "
            "COLDSNAP_RUN_DIR (its default is derived from COLDSNAP_STATE_DIR), or stop "
            "the other server")
    for why in removed.busy:
        logger.warning("left alone at start-up: %s", why)
    return claim


def find_leftovers(run_dir: Path, store: Path, criu_dir: Path) -> Leftovers:
    """What a dead server left, looked at without changing anything (``coldsnap doctor``).

    The locks are tried and let go at once: a part a live server holds has no leftovers.
    """
    found = Leftovers()
    lock = run_dir / RUN_LOCK
    if lock.exists():
        with _held(lock) as (fd, previous):
            if fd >= 0:
                _find_in_run_dir(found, run_dir, store, criu_dir, previous)
            else:
                found.busy.append(f"a server (pid {previous}) is running on {run_dir}")
    if not (store / STORE_LOCK).exists():
        _find_staging(found, store)  # no server of this version ever ran on it
    else:
        with _held(store / STORE_LOCK) as (fd, _):
            if fd >= 0:
                _find_staging(found, store)
            else:
                found.busy.append(f"a server is running on store {store}")
    return found


def remove(found: Leftovers) -> None:
    """Kill the processes first (they hold the mounts and namespaces), then the rest."""
    for pid in found.processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(found.processes, timeout=10)
    for mount in found.mounts:  # deepest first: a container's root before its run dir
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
    for path in found.containers + found.staging:
        shutil.rmtree(path, ignore_errors=True)
    for group in found.cgroups:
        with contextlib.suppress(OSError):
            os.rmdir(group)
    for index in found.netns:
        destroy_namespace(index, NETNS_OWNERS)


def _find_in_run_dir(found: Leftovers, run_dir: Path, store: Path, criu_dir: Path,
                     previous: int | None) -> None:
    found.processes = _orphans(run_dir, store, criu_dir)
    found.mounts = mounts_under(run_dir)
    containers = run_dir / "containers"
    found.containers = sorted(containers.iterdir()) if containers.is_dir() else []
    found.cgroups = [g for c in found.containers for g in group_paths(c.name) if g.is_dir()]
    if previous is not None and previous != os.getpid() and _alive(previous):
        return  # the pid was reused: the owner files naming it are another process's
    found.netns = _namespaces_of(previous)


def _find_staging(found: Leftovers, store: Path) -> None:
    staging = store / ".staging"
    found.staging = sorted(staging.iterdir()) if staging.is_dir() else []
    found.staging_bytes = sum(_tree_bytes(p) for p in found.staging)


def _orphans(run_dir: Path, store: Path, criu_dir: Path) -> list[int]:
    containers, staging = f"{run_dir}/containers/", f"{store}/.staging/"
    own_ns = os.stat("/proc/self/ns/mnt").st_ino
    verdicts: dict[int, bool] = {}  # per mount namespace: a container of ours?
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            ns = os.stat(entry / "ns" / "mnt").st_ino
            if ns != own_ns:
                if ns not in verdicts:
                    verdicts[ns] = _root_upper_under(entry, containers)
                if verdicts[ns]:
                    found.append(int(entry.name))
                    continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone, or a kernel thread
        if _is_tool(argv, criu_dir) and any(containers in a or staging in a for a in argv[1:]):
            found.append(int(entry.name))
    return found


def _root_upper_under(proc: Path, containers: str) -> bool:
    """True if the overlay at the process's root has its upper dir in ``containers``."""
    for line in (proc / "mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/" and f"upperdir={containers}" in fields[-1]:
            return True
    return False


def _is_tool(argv: list[str], criu_dir: Path) -> bool:
    exe = argv[0]
    return (os.path.basename(exe) in TOOLS or exe.startswith(f"{criu_dir}/")
            or any(a.endswith("/nsinit.py") for a in argv[1:3]))


def mounts_under(directory: Path) -> list[Path]:
    """This process's mount points below ``directory`` (not one on it), deepest first."""
    prefix = f"{directory}/"
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 is a space
        if point.startswith(prefix):
            points.add(point)
    return [Path(p) for p in sorted(points, key=lambda p: (-p.count("/"), p))]


def _namespaces_of(pid: int | None) -> list[int]:
    if pid is None or not NETNS_OWNERS.is_dir():
        return []
    owned = []
    for owner in NETNS_OWNERS.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if owner.name.isdigit() and int(owner.read_text() or 0) == pid:
                owned.append(int(owner.name))
    return sorted(owned)


@contextlib.contextmanager
def _held(path: Path):  # type: ignore[no-untyped-def]
    """(fd, pid in the file), fd -1 when another process holds the lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield -1, None
        return
    try:
        previous = _read_pid(fd)
        yield (fd if _try_lock(fd) else -1), previous
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total
