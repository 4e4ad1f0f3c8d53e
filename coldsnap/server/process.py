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
