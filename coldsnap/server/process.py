"""Process-level duties of the server: the state-dir lock, subreaping, stray zombies,
its open-file limit, and riding out the host's limits (``Exhaustion``)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import resource
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
# Out of file descriptors (ours, or the host's), memory or socket buffers: these pass.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# Room for COLDSNAP_MAX_CONNECTIONS and many containers' pipes, and no more: containers
# inherit the limit, and some programs close every fd up to it at start.
_NOFILE_CEILING = 65536

logger = logging.getLogger(__name__)


class AlreadyRunning(RuntimeError):
    pass


class StateLock:
    """An exclusive flock on ``<state_dir>/server.lock``, held for the server's life."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "server.lock"
        self._fd = -1

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            written = os.read(fd, 64).decode(errors="replace").strip()
            holder = flock_holder(fd)
            os.close(fd)
            raise AlreadyRunning(self._held_message(holder, written)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def _held_message(self, holder: int | None, written: str) -> str:
        """Who holds the lock, as the kernel says: a flock is let go when its holder
        exits, so the holder is alive, but may be frozen or not a server at all."""
        pid = str(holder) if holder is not None else written or "unknown"
        state = process_state(holder) if holder is not None else None
        if state == "T":
            return (f"the coldsnap server (pid {pid}) that holds {self.path} is stopped "
                    f"(SIGSTOP, or a debugger): resume it with `kill -CONT {pid}`, or end it "
                    f"with `kill -KILL {pid}`, then try again.")
        if holder is not None and written and str(holder) != written:
            return (f"process {holder} holds {self.path}, not the server that wrote it (pid "
                    f"{written}, {'alive' if process_state(int(written)) else 'gone'}): it "
                    f"inherited the lock; end process {holder} to start a server here.")
        return (f"another coldsnap server (pid {pid}) is already serving state dir "
                f"{self.path.parent} (it holds {self.path}). Use that server, stop it first, "
                "or point COLDSNAP_STATE_DIR at another directory.")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def flock_holder(fd: int) -> int | None:
    """The pid holding a flock on ``fd``'s file, from /proc/locks (None if not found)."""
    info = os.fstat(fd)
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks") as locks:
            for line in locks:  # "1: FLOCK  ADVISORY  WRITE 3766 08:01:1234 0 EOF"
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


def process_state(pid: int) -> str | None:
    """A process's state letter (R, S, D, T, Z...) from /proc; None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[0].decode() if fields else None


def become_subreaper() -> None:
    """Restored containers are reparented to us when criu exits: we must reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(err)}")


class ZombieReaper:
    """Reaps zombie children nobody else waits for.

    Containers and subprocesses reap their own children; a zombie still there
    on the next sweep (a second later) is an orphan reparented to us, so we
    reap it. Reaping it at first sight could steal a status someone waits for.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self._seen: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        exhaustion = Exhaustion("the zombie reaper")
        while not self._stop.wait(self._interval):
            try:
                self._sweep()
            except OSError as exc:  # /proc unreadable: out of fds (EMFILE) or memory
                exhaustion.failed(exc)
            else:
                exhaustion.recovered()

    def _sweep(self) -> None:
        zombies = set(_zombie_children())
        for pid in zombies & self._seen:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        self._seen = zombies


class Exhaustion:
    """One loop's run of failures on a host limit (EMFILE, ENFILE, ENOMEM, ...): logged
    once when it starts and once when it ends, however long it lasts, with a delay
    that doubles up to ``max_delay_s`` for the loop to wait between tries."""

    def __init__(self, what: str, max_delay_s: float = 1.0) -> None:
        self._what = what
        self._max_delay = max_delay_s
        self._since: float | None = None
        self._delay = 0.0
        self._failures = 0

    def failed(self, exc: BaseException) -> float:
        """Note a failure; the seconds to wait before the next try."""
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            logger.warning("%s failed: %s; it keeps trying, backing off up to %g s, and logs "
                           "again when it works (raise the server's open-file limit, "
                           "`ulimit -n`, if this recurs)", self._what, _describe(exc),
                           self._max_delay)
        self._delay = min(max(2 * self._delay, 0.01), self._max_delay)
        return self._delay

    def recovered(self) -> None:
        if self._since is not None:
            logger.warning("%s works again after %d failures in %.1f s", self._what,
                           self._failures, time.monotonic() - self._since)
            self._since, self._delay, self._failures = None, 0.0, 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({os.strerror(exc.errno)})"
    return str(exc) or type(exc).__name__


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (systemd and shells start us at 1024,
    about a thousand clients); the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NOFILE_CEILING if hard == resource.RLIM_INFINITY else min(hard, _NOFILE_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            logger.info("raised the open-file limit from %d to %d", soft, target)
            return target
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft,
                           target, exc)
    return soft


def _zombie_children() -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parens; split after the last ")".
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 2 and fields[0] == b"Z" and int(fields[1]) == me:
            found.append(int(entry.name))
    return found
