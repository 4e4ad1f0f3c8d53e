"""What the snapshot phase leaves in memory that deserves a warning, gathered in the
container just before ``ready_to_snapshot`` (wire/snapshot_warnings.py names the
kinds; docs/snapshot-diagnostics.md explains each).

Everything comes from this process's own state and the container's own ``/proc``
(it is pid 1 of its pid namespace, so ``/proc`` lists the container's processes
only). A gatherer that fails says nothing: a warning must never fail a boot.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from coldsnap._runtime.network import closed_at_restore, connection_owners
from coldsnap.wire.snapshot_warnings import (
    CHILD_PROCESS,
    FILE_OPEN_FOR_WRITING,
    MEMORY_GROWTH,
    RNG_DRAWN,
    SECRET_IN_ENV,
    TCP_CONNECTION,
    SnapshotWarning,
)

# A variable whose name contains one of these (any case) looks like a secret.
# A name made of words like HF_TOKEN, API_KEY, DB_PASSWORD, AWS_SECRET_ACCESS_KEY, APIKEY:
# whole words between underscores, so TOKENIZERS_PARALLELISM or MONKEY_PATCH are not.
SECRET_NAME = re.compile(r"(^|_)(TOKEN|SECRET|KEY|PASSWORD|PASSWD|APIKEY|CREDENTIALS?)S?(_|$)",
                         re.IGNORECASE)
# The last enter(snap=True) hook grew resident memory by more than this many percent,
# and by at least MEMORY_GROWTH_MIN_BYTES (small heaps grow by large percentages).
MEMORY_GROWTH_PERCENT = 50
MEMORY_GROWTH_MIN_BYTES = 64 << 20
# A Mersenne Twister's position right after seeding: no number drawn since.
MT_FRESH_POSITION = 624
# numpy's too; numpy 2 starts its global one, seeded from the OS, at 623 (so a single
# 32-bit draw right after numpy's import, 623 -> 624, goes unnoticed).
NUMPY_FRESH_POSITIONS = (MT_FRESH_POSITION, MT_FRESH_POSITION - 1)
PROC = Path("/proc")
O_ACCMODE, O_WRONLY, O_RDWR = 0o3, 0o1, 0o2


class MemoryWatch:
    """Resident memory before and after each enter(snap=True) hook; the last one counts."""

    def __init__(self) -> None:
        self.last: tuple[str, int, int] | None = None  # (hook, bytes before, bytes after)

    @contextlib.contextmanager
    def hook(self, label: str) -> Iterator[None]:
        before = resident_bytes()
        try:
            yield
        finally:
            self.last = (label, before, resident_bytes())

    def warnings(self) -> list[SnapshotWarning]:
        if self.last is None:
            return []
        label, before, after = self.last
        grown = after - before
        if before <= 0 or grown < MEMORY_GROWTH_MIN_BYTES \
                or grown * 100 <= before * MEMORY_GROWTH_PERCENT:
            return []
        return [SnapshotWarning(MEMORY_GROWTH, (
            f"memory grew from {before / 2**20:.0f} MiB to {after / 2**20:.0f} MiB "
            f"(+{grown * 100 / before:.0f}%) during {label}, the last enter(snap=True) hook: "
            "all of it is in the snapshot, and a bigger snapshot restores slower; free what "
            "the restored copies don't need (temporaries, caches) before the hook returns"))]


def resident_bytes() -> int:
    """This process's resident memory (0 where /proc can't tell)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def gather(connections: list[str], memory: MemoryWatch) -> list[SnapshotWarning]:
    """Every warning about this container as it is now, in the order of ``KINDS``."""
    warnings: list[SnapshotWarning] = []
    for gatherer in (lambda: tcp_warnings(connections), files_open_for_writing, rng_warnings,
                     secret_env_warnings, child_processes, memory.warnings):
        warnings += _quietly(gatherer)
    return warnings


def _quietly(gatherer: Callable[[], list[SnapshotWarning]]) -> list[SnapshotWarning]:
    try:
        return gatherer()
    except Exception as exc:  # noqa: BLE001 - a warning must never fail the boot
        print(f"coldsnap: gathering snapshot warnings failed: {exc!r}", file=sys.stderr)
        return []


def tcp_warnings(connections: list[str]) -> list[SnapshotWarning]:
    if not connections:
        return []
    owners = connection_owners()
    return [SnapshotWarning(TCP_CONNECTION, (
        f"{closed_at_restore([where])}{_held_by(owners.get(where))}: it was open when the "
        "snapshot was taken, and a restored copy lives in a network namespace of its own; "
        "open connections in enter(snap=False), or reconnect when the first use fails"))
        for where in sorted(set(connections))]


def _held_by(holders: list[str] | None) -> str:
    return f" (held by {', '.join(holders)})" if holders else ""


def files_open_for_writing(proc: Path = PROC) -> list[SnapshotWarning]:
    """Regular files any process of the container holds open for writing."""
    warnings = []
    for pid in _pids(proc):
        for fd_path in _entries(proc / str(pid) / "fd"):
            try:
                target = os.readlink(fd_path)
                flags = _fd_flags(proc / str(pid) / "fdinfo" / fd_path.name)
            except (OSError, ValueError):
                continue  # closed meanwhile
            if not target.startswith("/") or target.startswith(("/dev/", "/proc/")) \
                    or flags & O_ACCMODE not in (O_WRONLY, O_RDWR):
                continue
            warnings.append(SnapshotWarning(FILE_OPEN_FOR_WRITING, (
                f"{target} is open for writing (process {pid}, fd {fd_path.name}): every "
                "restored copy gets the file as it was at the snapshot and writes from the "
                "same offset; a write by one copy is not seen by the others. Close it before "
                "the snapshot, or open it in enter(snap=False)")))
    return warnings


def _fd_flags(fdinfo: Path) -> int:
    for line in fdinfo.read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "flags":
            return int(value.strip(), 8)
    raise ValueError(f"no flags in {fdinfo}")


def rng_warnings() -> list[SnapshotWarning]:
    """The global RNGs that produced numbers before the snapshot."""
    drawn = []
    _, internal, gauss_next = random.getstate()
    if internal[-1] != MT_FRESH_POSITION or gauss_next is not None:
        drawn.append("random")
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        _, _, position, has_gauss, _ = numpy.random.get_state()
        if position not in NUMPY_FRESH_POSITIONS or has_gauss:
            drawn.append("numpy.random")
    torch = sys.modules.get("torch")
    if torch is not None and _torch_drawn(torch):
        drawn.append("torch")
    return [SnapshotWarning(RNG_DRAWN, (
        f"{name}: numbers were drawn from its global RNG before the snapshot, so every "
        "restored copy would continue from the same state; coldsnap reseeds random, numpy "
        "and torch at restore, but values drawn before the snapshot (ids, samples, "
        "shuffles) are the same in every copy")) for name in drawn]


def _torch_drawn(torch: object) -> bool:
    """The default generator's state differs from a fresh one seeded alike."""
    fresh = torch.Generator()  # type: ignore[attr-defined]
    fresh.manual_seed(torch.initial_seed())  # type: ignore[attr-defined]
    return not bool(torch.equal(fresh.get_state(), torch.get_rng_state()))  # type: ignore[attr-defined]


def secret_env_warnings() -> list[SnapshotWarning]:
    """Variables whose names look like a secret's; their values are never read here."""
    names = sorted(name for name in os.environ if SECRET_NAME.search(name))
    return [SnapshotWarning(SECRET_IN_ENV, (
        f"environment variable {name} looks like a secret (by its name), and its value is "
        "in the snapshot's memory, so on disk and in every restored copy; a Secret's "
        "variables are set to their current values at restore, but copies your code made "
        "before the snapshot keep the old ones. Read it in enter(snap=False) instead"))
        for name in names]


def child_processes(proc: Path = PROC) -> list[SnapshotWarning]:
    """This process's descendants: every restore brings them back as they were."""
    parents = {pid: _parent(proc, pid) for pid in _pids(proc)}
    ours = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in ours and pid not in ours}
        ours |= found
        grew = bool(found)
    return [SnapshotWarning(CHILD_PROCESS, (
        f"child process {pid} ({_command(proc, pid)}) is in the snapshot: every restored "
        "copy brings it back in the state it had then (its connections closed, its clocks "
        "jumped); start it in enter(snap=False) unless it is meant to be snapshotted"))
        for pid in sorted(ours - {os.getpid()})]


def _pids(proc: Path) -> list[int]:
    return sorted(int(p.name) for p in _entries(proc) if p.name.isdigit())


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _parent(proc: Path, pid: int) -> int:
    try:
        stat = (proc / str(pid) / "stat").read_text()
        return int(stat.rpartition(")")[2].split()[1])  # the name may hold spaces
    except (OSError, IndexError, ValueError):
        return 0


def _command(proc: Path, pid: int) -> str:
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(a.decode("utf-8", "replace") for a in argv if a)[:120] or "?"
