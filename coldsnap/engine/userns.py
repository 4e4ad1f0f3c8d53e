"""User namespaces: a container's root is an unprivileged uid range of the host.

Containers whose root is an image of their own (``ContainerSpec.base``) run in a
user namespace that maps their uids and gids 0..65535 onto one range of the host's,
the server's own: a file the host's root owns is out of their reach even where it is
visible (a bind, a leaked fd), and what they write lands on the host under those ids.

How each part sees the right owners:

- on disk, every layer (a base's rootfs, image layers, a snapshot's filesystem)
  keeps the container's own ids; each is shown to containers through an idmapped
  mount (``idmap``) that shifts them into the range;
- the overlay is mounted by the host (its upper dir can't sit on an idmapped
  mount: the host's root, the overlay's mounter, has no id there), so the upper
  dir holds host ids: what the engine seeds there is shifted in (``shift_tree``), a
  snapshot's or a build's copy of it is shifted back;
- ``nsinit.py`` makes the namespace as the host's root (the host's Python can't be
  started by a mapped root), writes no file after it and execs the container's
  init inside the new namespaces (CRIU refuses a tree whose mm predates them).

Each server claims a range in ``/run/coldsnap-userns`` (a file per range, a line per
claiming process: its pid and the range's owner), the first free from a slot derived
from its owner, so a server keeps its range across restarts and two servers never
share one. The owner is the server's run dir, or for a fleet's host agents their
control plane's ``uid_range_owner`` (ray_agents.py): the same on every machine, so
that alike hosts claim the same range and share one host key (the range is part of
it), and two agents of one fleet on one machine share it (one fleet is one server).
Ranges that /etc/subuid or /etc/subgid hand to users are skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from coldsnap.engine.base import EngineUnavailable
from coldsnap.settings import Settings

SIZE = 65536
FIRST = 1 << 20  # above the ranges useradd hands out from 100000 on small hosts
SLOTS = 16384
CLAIMS = Path("/run/coldsnap-userns")
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))

CLONE_NEWUSER = 0x10000000
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_IDMAP = 0x00100000

_libc = ctypes.CDLL(None, use_errno=True)


class UsernsError(OSError):
    """A user namespace or an idmapped mount could not be made here."""


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@dataclasses.dataclass(frozen=True)
class IdRange:
    """Container ids 0..size-1 are the host's base..base+size-1."""

    base: int
    size: int = SIZE

    def map_line(self) -> str:
        """A line of uid_map/gid_map: inside, outside, count."""
        return f"0 {self.base} {self.size}\n"


USER_NAMESPACES = ("on", "off")


def user_namespace(settings: Settings) -> UserNamespace | None:
    """This server's user namespace for containers on an image's own root, unless
    COLDSNAP_USER_NAMESPACES=off."""
    if settings.user_namespaces not in USER_NAMESPACES:
        raise EngineUnavailable(f"COLDSNAP_USER_NAMESPACES={settings.user_namespaces!r}: "
                                f"use one of {', '.join(USER_NAMESPACES)}")
    if settings.user_namespaces == "off":
        return None
    try:
        return UserNamespace(settings.uid_range_owner or str(settings.run_path))
    except OSError as exc:
        raise EngineUnavailable(
            f"containers can't get a user namespace here: {exc}. Run `coldsnap doctor`; "
            "COLDSNAP_USER_NAMESPACES=off runs them as the host's root instead") from exc


class UserNamespace:
    """One server's id range and a user namespace holding its mapping (for idmapped
    mounts), kept open until ``close``."""

    def __init__(self, owner: str | Path, claims: Path = CLAIMS) -> None:
        self.owner = str(owner)
        self.claim = _claim_range(self.owner, claims)
        self.ids = IdRange(FIRST + int(self.claim.name) * SIZE)
        try:
            self.fd = _namespace_fd(self.ids)
        except BaseException:
            _release(self.claim, self.owner)
            raise

    def idmap(self, mounted: Path, target: Path) -> None:
        """Show the mount at ``mounted`` again at ``target``, its owners shifted into
        the range (an idmapped mount; ext4 and the kernels this runs on support it)."""
        idmap(self.fd, mounted, target)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        _release(self.claim, self.owner)


def idmap(userns_fd: int, mounted: Path, target: Path) -> None:
    """Clone the mount at ``mounted`` to ``target``, idmapped by ``userns_fd``'s maps."""
    tree = _syscall(SYS_OPEN_TREE, AT_FDCWD, str(mounted).encode(),
                    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, what=f"open_tree {mounted}")
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH, ctypes.byref(attr),
                 ctypes.c_size_t(ctypes.sizeof(attr)), what=f"idmapping {mounted}")
        target.mkdir(exist_ok=True)
        _syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, str(target).encode(),
                 MOVE_MOUNT_F_EMPTY_PATH, what=f"move_mount to {target}")
    finally:
        os.close(tree)


def probe(scratch: Path) -> str:
    """Why containers can't get a user namespace here ("" when they can): make one
    with a mapping and an idmapped view of a tmpfs under ``scratch``."""
    ids = IdRange(FIRST)
    mounted, view = scratch / "probe", scratch / "probe.idmapped"
    try:
        fd = _namespace_fd(ids)
    except OSError as exc:
        return str(exc)
    try:
        mounted.mkdir(parents=True, exist_ok=True)
        if _libc.mount(b"coldsnap-probe", str(mounted).encode(), b"tmpfs", 0, b"") != 0:
            return f"mounting a tmpfs on {mounted}: {os.strerror(ctypes.get_errno())}"
        idmap(fd, mounted, view)
        return "" if os.stat(view).st_uid == ids.base else "the idmapped view shows no shift"
    except OSError as exc:
        return f"idmapped mounts: {exc}"
    finally:
        os.close(fd)
        for path in (view, mounted):
            _libc.umount2(str(path).encode(), 2)
            with contextlib.suppress(OSError):
                path.rmdir()


def shift_tree(path: Path, by: int) -> None:
    """Add ``by`` to the owner and group of ``path`` and of everything below it
    (symlinks themselves, not their targets). Ids the shift would take below 0 stay."""
    for entry in [path, *_walk(path)]:
        st = os.lstat(entry)
        uid, gid = st.st_uid + by, st.st_gid + by
        if uid >= 0 and gid >= 0:
            os.lchown(entry, uid, gid)


def _walk(path: Path) -> list[Path]:
    found: list[Path] = []
    for top, dirs, files in os.walk(path):
        found += [Path(top, name) for name in (*dirs, *files)]
    return found


def _claim_range(owner: str, claims: Path) -> Path:
    """Claim the first free slot from the one derived from ``owner``: a slot is free when
    no live process holds it for another owner."""
    claims.mkdir(mode=0o700, exist_ok=True)
    start = int(hashlib.sha256(owner.encode()).hexdigest(), 16) % SLOTS
    taken = _subid_ranges()
    with _locked(claims):
        for step in range(SLOTS):
            slot = (start + step) % SLOTS
            base = FIRST + slot * SIZE
            if any(base < end and first < base + SIZE for first, end in taken):
                continue
            claim = claims / str(slot)
            if _take(claim, owner):
                return claim
    raise UsernsError(f"all {SLOTS} uid ranges in {claims} are claimed by running servers")


@contextlib.contextmanager
def _locked(claims: Path) -> Iterator[None]:
    """Claims are read and written under one lock: two agents of a fleet starting at once
    must both see the other's line."""
    fd = os.open(claims, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def _take(claim: Path, owner: str) -> bool:
    holders = _live_holders(claim)
    if any(who != owner for _, who in holders):
        return False  # a running server's (or, in tests, another engine of ours)
    _write(claim, [*holders, (os.getpid(), owner)])
    return True


def _release(claim: Path, owner: str) -> None:
    """Drop one of this process's lines from ``claim``; the file goes with its last."""
    with contextlib.suppress(OSError), _locked(claim.parent):
        holders = _live_holders(claim)
        with contextlib.suppress(ValueError):
            holders.remove((os.getpid(), owner))
        if holders:
            _write(claim, holders)
        else:
            claim.unlink(missing_ok=True)


def _live_holders(claim: Path) -> list[tuple[int, str]]:
    """(pid, owner) of each line of ``claim`` whose process runs."""
    try:
        lines = claim.read_text().splitlines()
    except FileNotFoundError:
        return []
    holders = []
    for line in lines:
        pid, _, owner = line.partition(" ")
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            holders.append((int(pid), owner))
    return holders


def _write(claim: Path, holders: list[tuple[int, str]]) -> None:
    fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{pid} {owner}\n" for pid, owner in holders))


def _subid_ranges() -> list[tuple[int, int]]:
    """[first, end) of every range /etc/subuid and /etc/subgid hand out."""
    ranges = []
    for path in SUBID_FILES:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                fields = line.split(":")
                if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                    ranges.append((int(fields[1]), int(fields[1]) + int(fields[2])))
    return ranges


def _namespace_fd(ids: IdRange) -> int:
    """An fd of a new user namespace with ``ids``' mapping (its process exits)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(ready_r)
        os.close(done_w)
        ok = _libc.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"1" if ok else b"0")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise UsernsError("unshare(CLONE_NEWUSER) failed: user namespaces are off here "
                              "(see /proc/sys/user/max_user_namespaces)")
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{pid}/{name}").write_text(ids.map_line())
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def _syscall(number: int, *args: object, what: str) -> int:
    result = _libc.syscall(number, *args)
    if result < 0:
        err = ctypes.get_errno()
        raise UsernsError(err, f"{what}: {os.strerror(err)}")
    return int(result)
