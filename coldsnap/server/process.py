"""Process-level duties of the server: the state-dir lock, subreaping, stray zombies."""

from __future__ import annotations

import ctypes
import fcntl
import os
import threading
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


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
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another coldsnap server (pid {holder}) is already serving state dir "
                f"{self.path.parent} (it holds {self.path}). Use that server, stop it first, "
                "or point COLDSNAP_STATE_DIR at another directory."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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
        while not self._stop.wait(self._interval):
            zombies = set(_zombie_children())
            for pid in zombies & self._seen:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            self._seen = zombies


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
