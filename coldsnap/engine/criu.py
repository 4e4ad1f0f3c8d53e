"""The CRIU driver: the exact command lines, with timeouts and typed errors.

All CRIU knowledge lives here; see DESIGN.md sections 5 and 6 for why each flag.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

from coldsnap.engine.base import DumpFailed, RestoreFailed, SnapshotError

LOG_TAIL_LINES = 25
# A dump in a user namespace marks the container's /sys external under this name: a
# restore there can't mount sysfs itself (the host's user namespace owns the network
# namespace), so it binds one the server mounted (sandbox.ContainerDirs.sysfs_view).
SYSFS_KEY = "sysfs"


def volume_keys(paths: list[str]) -> dict[str, str]:
    """Container path -> the name CRIU files that external mount under (``vol-N``)."""
    return {path: f"vol-{index}" for index, path in enumerate(sorted(paths))}


def dump(
    criu: Path, pid: int, images: Path, netns_inode: int, timeout: float,
    userns: bool = False, volumes: dict[str, str] | None = None,
) -> float:
    """Checkpoint the tree rooted at ``pid`` into ``images``; the tree is killed.

    The network namespace is external: a restore plugs in a namespace of its own.
    Established TCP connections can't follow a copy there (its address differs):
    ``--tcp-close`` dumps them without their state and a restore brings them back
    closed, so reads and writes on them fail and client libraries reconnect (the
    runtime names them: _runtime/network.py). Listening sockets are dumped whole,
    less the connections still waiting in their accept queue (``--skip-in-flight``:
    without it such a connection fails the dump, "In-flight connection").
    In a user namespace (``userns``) CRIU runs in the tree's network namespace
    instead, which it then leaves out of the images: a restored tree would enter an
    external one only after its new user namespace, and can't (EPERM). ``volumes``
    (container path -> key, ``volume_keys``) are external mounts too: a volume's
    files stay out of the images, and a restore binds the volume's directory anew.
    Returns the seconds it took.
    """
    net = ["--external", f"net[{netns_inode}]:extnet"]
    external = {**(volumes or {}), **({"/sys": SYSFS_KEY} if userns else {})}
    mounts = [arg for path, key in external.items() for arg in ("--external", f"mnt[{path}]:{key}")]
    enter = ["nsenter", f"--net=/proc/{pid}/ns/net"] if userns else []
    argv = [
        *enter, str(criu), "dump", "--tree", str(pid), "--images-dir", str(images),
        "--log-file", "dump.log", *([] if userns else net), *mounts,
        "--file-locks", "--link-remap", "--network-lock", "skip", "--tcp-close",
        "--skip-in-flight", "--manage-cgroups=ignore",
    ]  # fmt: skip
    return _run(argv, images / "dump.log", timeout, DumpFailed, "criu dump")


def restore(
    criu: Path,
    images: Path,
    root: Path,
    work_dir: Path,
    inherit: dict[str, int],
    timeout: float,
    cgroups: tuple[Path, ...] = (),
    netns: Path | None = None,
    volumes: dict[str, Path] | None = None,
    sysfs: Path | None = None,
) -> tuple[int, float]:
    """Restore the tree from ``images`` with ``root`` as its root filesystem.

    ``inherit`` maps CRIU resource names (``pipe:[123]``, ``extnet``) to fds of
    ours that replace them. ``cgroups``: the container's groups, which CRIU (and so
    the tree) joins first. ``netns``: run CRIU in that network namespace, which the
    tree inherits (a dump in a user namespace, see ``dump``). ``volumes``: the dump's
    external mounts by key, and the host directory each binds now; ``sysfs``: what it
    binds at /sys (a dump in a user namespace, see ``SYSFS_KEY``). Returns (host pid
    of the restored root, seconds).
    """
    pidfile = work_dir / "restore.pid"
    joins = "".join(f'echo $$ > {shlex.quote(str(g / "cgroup.procs"))} && ' for g in cgroups)
    argv = [
        *(["nsenter", f"--net={netns}"] if netns is not None else []),
        # CRIU makes the tree's IPC and UTS namespaces anew but not its cgroup
        # namespace when it leaves cgroups alone: the tree inherits this one, made in
        # the container's own groups.
        "sh", "-c", joins + 'exec "$@"', "criu-restore",
        "unshare", "--cgroup", "--",
        str(criu), "restore", "--images-dir", str(images), "--root", str(root),
        "--restore-detached", "--pidfile", str(pidfile),
        "--log-file", str(work_dir / "restore.log"), "--tcp-close", "--file-locks",
        "--network-lock", "skip", "--manage-cgroups=ignore",
    ]  # fmt: skip
    for resource, fd in inherit.items():
        argv += ["--inherit-fd", f"fd[{fd}]:{resource}"]
    external = {**(volumes or {}), **({SYSFS_KEY: sysfs} if sysfs is not None else {})}
    for key, source in external.items():  # key (``vol-N``) -> the host dir to bind
        argv += ["--external", f"mnt[{key}]:{source}"]
    seconds = _run(
        argv, work_dir / "restore.log", timeout, RestoreFailed, "criu restore",
        pass_fds=tuple(inherit.values()),
    )  # fmt: skip
    try:
        return int(pidfile.read_text().strip()), seconds
    except (OSError, ValueError) as exc:
        raise RestoreFailed(f"criu restore wrote no pid file ({exc})") from exc


def _run(
    argv: list[str],
    log: Path,
    timeout: float,
    error: type[SnapshotError],
    what: str,
    pass_fds: tuple[int, ...] = (),
) -> float:
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, pass_fds=pass_fds, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise error(f"could not start {what}: {exc}; run `coldsnap doctor`") from exc
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise error(f"{what} timed out after {timeout:.0f}s and was killed", _tail(log),
                    transient=True) from None
    if proc.returncode != 0:
        detail = _tail(log) or stderr.decode(errors="replace").strip()
        killed = proc.returncode < 0
        how = f"was killed by signal {-proc.returncode}" if killed else "failed"
        cause = first_error(_read(log))
        cause += next((f" ({hint})" for known, hint in HINTS if known in cause), "")
        raise error(f"{what} {how} (exit {proc.returncode})" + (f": {cause}" if cause else ""),
                    detail, transient=killed)
    return time.monotonic() - t0


# What a CRIU error means for a user, where the line alone does not say it.
HINTS = (
    ("Can't bind inet socket", "a socket bound in the snapshot phase to the container's "
     "own network address: each restored copy has another address; bind to 0.0.0.0 or "
     "127.0.0.1"),
)
# Error lines CRIU also writes on dumps that succeed.
BENIGN_ERRORS = ("rlimit: Can't setup RLIMIT_NOFILE",)


def first_error(log_text: str) -> str:
    """CRIU's first ``Error (file:line): ...`` line, without its timestamp: the cause.

    The lines after it mostly report the failure climbing back up.
    """
    for line in log_text.splitlines():
        _, marker, rest = line.partition("Error (")
        if marker and not any(benign in rest for benign in BENIGN_ERRORS):
            return (marker + rest).strip()
    return ""


_BAD_SIZE = re.compile(r"File (\S+) has bad size \d+ \(expect \d+\)")


def bad_size_file(reason: str) -> str | None:
    """The path (from the container's root, with a leading "/") of the open file whose
    size changed since the dump, when that is why a restore failed."""
    match = _BAD_SIZE.search(reason)
    return "/" + match.group(1).lstrip("/") if match else None


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _tail(log: Path) -> str:
    return "\n".join(_read(log).splitlines()[-LOG_TAIL_LINES:])
