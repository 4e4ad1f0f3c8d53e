"""Container sandboxes: per-container dirs, overlay roots, fresh starts.

Everything a container writes lands in its own upper dir, on a disk of its own
(disks.py) mounted under the run dir (a tmpfs the engine mounts), never on the
host's filesystem. Extra lower layers (image files,
a snapshot's filesystem) come mounted from ``layers.LayerCache``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from coldsnap.engine import seccomp
from coldsnap.engine.userns import IdRange, shift_tree
from coldsnap.wire.container import CODE_DIR, CODE_DIR_ENV

# Idmapped views of volumes that restores in a user namespace bind (volume_views).
VOLUME_VIEWS = Path("/run/coldsnap-volume-views")
# Device nodes a container gets in its private /dev: (name, major, minor).
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0)]
NSINIT = str(Path(__file__).with_name("nsinit.py"))
RESOLV_CONF = "/etc/resolv.conf"
# Pid 1 of every container (nsinit.py says why); Debian's tini-static, a static
# binary, so it runs in any root that holds it.
CONTAINER_INIT = "/usr/bin/tini-static"
# Where a root of its own (an image's, not the host's) carries it: the server puts
# it there with the runtime (server/images/runtime_layer.py).
IMAGE_INIT = "/opt/coldsnap/bin/tini-static"
# Namespaces of a fresh container besides its network namespace. CRIU saves the
# IPC and UTS contents with a snapshot and makes new namespaces on restore.
NAMESPACES = ("--pid", "--mount", "--ipc", "--uts")  # and a cgroup namespace: nsinit.py


class ContainerDirs:
    """root/ and disk/{upper,work}/ of one container under the run dir; ``attach_disk``
    mounts the container's own disk at disk/ (disks.py), else disk/ is on the run dir."""

    def __init__(self, run_dir: Path, container_id: str,
                 attach_disk: Callable[[Path], None] | None = None) -> None:
        self.base = run_dir / "containers" / container_id
        self.root = self.base / "root"
        self.disk = self.base / "disk"
        self.upper = self.disk / "upper"
        self.work = self.disk / "work"  # overlayfs wants it on the upper dir's filesystem
        self.ids: IdRange | None = None  # the user namespace's ids (userns.py), if any
        self.volumes: list[str] = []  # where volumes are mounted (external to CRIU)
        self.root.mkdir(parents=True)
        self.disk.mkdir()
        try:
            if attach_disk is not None:
                attach_disk(self.disk)
            self.upper.mkdir()
            self.work.mkdir()
        except BaseException:
            self.remove()
            raise

    def seed_upper(self) -> None:
        """Give the container a private /dev, without a mount: an opaque directory in
        the upper dir with device nodes in it. It travels with a snapshot. (What the
        container must not see of the host is a lower layer: masks.py.)"""
        dev = self.upper / "dev"
        _opaque_dir(dev, 0o755)
        for name, major, minor in DEVICES:
            os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(dev / name, 0o666)  # mknod's mode went through the umask
        _opaque_dir(dev / "shm", 0o1777)
        (dev / "pts").mkdir()
        for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            (dev / link).symlink_to(target)

    def add_devices(self, nodes: list[Path]) -> None:
        """Device nodes merged into /dev of a restored copy (GPUs after restore)."""
        if nodes:
            (self.upper / "dev").mkdir(exist_ok=True)
        for node in nodes:
            os.mknod(self.upper / "dev" / node.name, 0o666 | stat.S_IFCHR, node.stat().st_rdev)
            os.chmod(self.upper / "dev" / node.name, 0o666)

    def add_resolver(self) -> None:
        """The host's /etc/resolv.conf in a root of its own, as Docker gives one: an
        image need not ship it, and one it ships names another network's servers."""
        try:
            data = Path(RESOLV_CONF).read_bytes()
        except OSError:
            return
        etc = self.upper / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        (etc / "resolv.conf").write_bytes(data)
        (etc / "resolv.conf").chmod(0o644)

    def write_files(self, files: dict[str, bytes]) -> None:
        code = self.upper / CODE_DIR.lstrip("/")
        code.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            target = code / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def give_to_namespace(self, ids: IdRange) -> None:
        """Hand what the server seeded in the upper dir (and the dir) to the user
        namespace's root: the overlay shows the upper dir's host ids as they are."""
        self.ids = ids
        shift_tree(self.upper, ids.base)

    def bind(self, binds: tuple[str, ...]) -> None:
        """Show host paths read-only in the mounted root, from the host: in a user
        namespace the container's root may not reach them (nsinit.py does it otherwise)."""
        from coldsnap.engine.nsinit import bind_read_only

        for path in binds:
            bind_read_only(path, str(self.root) + path)

    def mount_volumes(self, volumes: dict[str, Path],
                      idmap: Callable[[Path, Path], None]) -> None:
        """Bind volumes into the mounted root from the host, each through ``idmap`` (the
        user namespace's view of it: its root owns the volume's root-owned files)."""
        for path, source in volumes.items():
            target = Path(str(self.root) + path)
            target.parent.mkdir(parents=True, exist_ok=True)
            idmap(source, target)

    def volume_views(self, volumes: dict[str, Path],
                     idmap: Callable[[Path, Path], None]) -> dict[str, Path]:
        """For a restore in a user namespace: an idmapped view of each volume, for CRIU
        to bind (a bind keeps the view's id mapping). CRIU opens them as the namespace's
        root, which can't pass the run dir (0700): they live under ``VOLUME_VIEWS``
        (0711: passable, not listable), in a dir named by the container's id."""
        own = self.views
        for directory in (VOLUME_VIEWS, own.parent, own):
            directory.mkdir(mode=0o711, exist_ok=True)
        views = {}
        for index, (path, source) in enumerate(sorted(volumes.items())):
            view = own / f"volume-{index}"
            idmap(source, view)
            views[path] = view
        return views

    def sysfs_view(self, netns: Path) -> Path:
        """For a restore in a user namespace: a read-only sysfs of ``netns`` (so it lists
        the container's network devices) for CRIU to bind at /sys, which the dump marked
        external (criu.SYSFS_KEY). Beside the volume views, for the reason they say."""
        own = self.views
        for directory in (VOLUME_VIEWS, own.parent, own):
            directory.mkdir(mode=0o711, exist_ok=True)
        view = own / "sysfs"
        view.mkdir(exist_ok=True)
        subprocess.run(["nsenter", f"--net={netns}", "mount", "-t", "sysfs", "-o",
                        "ro,nosuid,nodev,noexec", "sysfs", str(view)],
                       check=True, capture_output=True, timeout=30)
        return view

    @property
    def views(self) -> Path:
        return volume_views_of(self.base.parent.parent) / self.base.name

    def mount_root(self, layers: list[Path], host_root: bool = True) -> None:
        """Mount the overlay at root/ from the host side (restores); ``host_root``: the
        host's "/" lies below the layers (else the lowest layer is the image's root)."""
        from coldsnap.engine.nsinit import mount, overlay_options

        lower = [*map(str, layers), *(["/"] if host_root else [])]
        mount("overlay", str(self.root), "overlay", 0,
              overlay_options(lower, str(self.upper), str(self.work)))

    def save_upper(self, dest: Path) -> None:
        """Copy what the container wrote (minus coldsnap's own seeding) to ``dest``."""
        tmp = dest.with_name(dest.name + f".{uuid.uuid4().hex[:6]}.tmp")
        subprocess.run(["cp", "-a", str(self.upper), str(tmp)], check=True)
        for seeded in ("dev", CODE_DIR.split("/")[1]):
            shutil.rmtree(tmp / seeded, ignore_errors=True)
        _drop_seeded_resolver(tmp)
        if self.ids is not None:  # layers keep the container's own ids (userns.py)
            shift_tree(tmp, -self.ids.base)
        os.rename(tmp, dest)

    def remove(self) -> None:
        for mount_point in (self.root, self.disk):
            if os.path.ismount(mount_point):
                subprocess.run(["umount", "-l", str(mount_point)], capture_output=True,
                               check=False)
        for place in (self.base, self.views):
            for leftover in _mounts_under(place):  # a volume's bind or view
                subprocess.run(["umount", "-l", leftover], capture_output=True, check=False)
            if _mounts_under(place):  # never delete through a mount: a volume's files
                continue
            shutil.rmtree(place, ignore_errors=True)


def volume_views_of(run_dir: Path) -> Path:
    """The dir of one server's volume views (its run dir's, by a hash of its path)."""
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return VOLUME_VIEWS / digest


def clear_volume_views(run_dir: Path) -> None:
    """Unmount and remove what a killed server left of its volume views (at start-up,
    by the server that owns ``run_dir`` now)."""
    place = volume_views_of(run_dir)
    for leftover in _mounts_under(place):
        subprocess.run(["umount", "-l", leftover], capture_output=True, check=False)
    if place.exists() and not _mounts_under(place):
        shutil.rmtree(place, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    prefix = str(path)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p == prefix or p.startswith(prefix + "/")),
                  key=len, reverse=True)


def _drop_seeded_resolver(layer: Path) -> None:
    """Leave ``add_resolver``'s file out of a saved layer, unless the container changed it."""
    resolv = layer / RESOLV_CONF.lstrip("/")
    try:
        if resolv.read_bytes() != Path(RESOLV_CONF).read_bytes():
            return
    except OSError:
        return
    resolv.unlink()
    with contextlib.suppress(OSError):
        resolv.parent.rmdir()  # only if nothing else was written in /etc


def _opaque_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def gpu_device_nodes() -> list[Path]:
    return [p for p in sorted(Path("/dev").glob("nvidia*")) if p.is_char_device()]


def refresh_kdat_cache(criu: Path) -> None:
    """Give CRIU its kernel-facts cache where /run is not a tmpfs.

    CRIU probes the kernel on every run (~20 ms) unless /run/criu.kdat holds
    the answers, and it only writes that file on a tmpfs. We let it write one
    in a private mount namespace with /run on a tmpfs and copy it out. It is
    made anew each time an engine starts, so a kernel upgrade never sees a
    stale one.
    """
    if _is_tmpfs("/run"):
        return
    script = f"mount -t tmpfs kdat /run && {criu} check >/dev/null 2>&1; cat /run/criu.kdat"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode == 0 and result.stdout:
        tmp = Path(f"/run/.coldsnap-kdat-{os.getpid()}")
        tmp.write_bytes(result.stdout)
        os.rename(tmp, "/run/criu.kdat")


def _is_tmpfs(path: str) -> bool:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == path:
            return fields[2] == "tmpfs"
    return False


RUN_TMPFS = "coldsnap-run"


def ensure_tmpfs(run_dir: Path) -> bool:
    """Mount a tmpfs on ``run_dir`` unless one is there; True if it is ours to unmount:
    we mounted it, or a killed server did (its source is named ``coldsnap-run``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(run_dir):
        return _mount_source(run_dir) == RUN_TMPFS
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=700", RUN_TMPFS, str(run_dir)], check=True
    )
    return True


def _mount_source(path: Path) -> str:
    """The source of the topmost mount on ``path`` ("" if none)."""
    source = ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            source = fields[fields.index("-") + 2]
    return source


def start_fresh(
    dirs: ContainerDirs,
    argv: list[str],
    env: dict[str, str],
    layers: list[Path],
    netns: Path | None,
    child_fds: tuple[int, ...],
    log_fd: int,
    cwd: str = "/",
    host_root: bool = True,
    binds: tuple[str, ...] = (),
    cgroups: tuple[Path, ...] = (),
    ids: IdRange | None = None,
    volumes: dict[str, Path] | None = None,
    fixed_layout: bool = False,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start pid 1 of new namespaces (``NAMESPACES``); netns None means a new empty one.
    With ``ids``, of a user namespace too, on the root the caller mounted (nsinit.py).

    Returns the ``unshare`` process and the host pid of the container's root.
    """
    config = {
        "root": str(dirs.root),
        "upper": str(dirs.upper),
        "work": str(dirs.work),
        "layers": [str(p) for p in layers],
        "host_root": host_root,
        "cgroups": [str(p) for p in cgroups],
        "binds": list(binds),
        "volumes": [[str(source), path] for path, source in sorted((volumes or {}).items())],
        "argv": argv,
        "cwd": cwd,
        "env": {**env, CODE_DIR_ENV: CODE_DIR},
        "seccomp": seccomp.program().hex(),
        "init": CONTAINER_INIT if host_root else IMAGE_INIT,
        "fixed_layout": fixed_layout,
    }
    unshare = ["unshare", *NAMESPACES, "--fork", "--propagation", "private"]
    if ids is not None:  # nsinit makes the namespaces itself
        config.update(userns=ids.map_line(), new_net=netns is None)
        unshare = []
    elif netns is None:
        unshare.insert(1, "--net")
    if netns is not None:
        unshare = ["nsenter", f"--net={netns}", *unshare]
    proc = subprocess.Popen(
        # -S: nsinit needs only the standard library, so skip site-packages. The config
        # goes through stdin, not argv: its env (secrets too) is no business of `ps`.
        [*unshare, sys.executable, "-I", "-S", NSINIT],
        stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd, pass_fds=child_fds,
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        with proc.stdin:
            proc.stdin.write(json.dumps(config).encode())
    except BrokenPipeError:
        pass  # nsinit died before reading it: _child_pid reports its exit
    return proc, _child_pid(proc, in_user_namespace=ids is not None)


def _child_pid(proc: subprocess.Popen[bytes], timeout: float = 10.0,
               in_user_namespace: bool = False) -> int:
    """The container's root: the child of ``proc`` (in a user namespace: the child
    there, not nsinit's helper that writes the id maps)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    ours = os.stat("/proc/self/ns/user").st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
            if in_user_namespace:
                pids = [p for p in pids if os.stat(f"/proc/{p}/ns/user").st_ino != ours]
        except OSError:
            pids = []
        if pids:
            return int(pids[0])
        if proc.poll() is not None:
            raise RuntimeError(f"the container's namespace setup exited with {proc.returncode}")
        time.sleep(0.001)
    proc.kill()
    raise RuntimeError("the container's root process did not appear within 10s")
