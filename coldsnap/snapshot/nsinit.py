"""Pid 1 of a fresh container: build its root filesystem, then exec the runtime.

Run as ``unshare --pid --mount [--net] --fork --propagation private -- python -m
coldsnap.snapshot.nsinit CONFIG_JSON``. It

1. mounts an overlay (lower: image layers, then the host root; upper: the
   container's own dir) and a private ``/dev``, ``/proc`` and ``/sys`` in it,
2. hides the server's state dir behind an empty read-only tmpfs,
3. ``pivot_root``s into it (CRIU refuses a chroot) and drops the old root,
4. becomes a session leader (CRIU can't dump a tree whose session leader is
   outside it) and execs the runtime.

Kept to the standard library: it runs before anything else is set up.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64

_libc = ctypes.CDLL(None, use_errno=True)

# Device nodes a container gets in its private /dev: (name, major, minor).
DEVICES = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()),
        f"mount {fstype} on {target}",
    )


def build_root(config: dict) -> str:
    root = config["root"]
    lower = ":".join([*config.get("layers", []), "/"])
    mount("none", "/", "", MS_REC | MS_PRIVATE)
    mount(
        "overlay",
        root,
        "overlay",
        0,
        f"lowerdir={lower},upperdir={config['upper']},workdir={config['work']}",
    )
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=64k")
    for name, major, minor in DEVICES:
        os.mknod(os.path.join(dev, name), 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    for gpu_node in config.get("gpu_devices", []):
        st = os.stat(gpu_node)
        os.mknod(os.path.join(dev, os.path.basename(gpu_node)), 0o666 | stat.S_IFCHR, st.st_rdev)
    os.makedirs(os.path.join(dev, "shm"))
    mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, link))
    proc = os.path.join(root, "proc")
    os.makedirs(proc, exist_ok=True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for hidden in config.get("masks", []):
        target = os.path.join(root, hidden.lstrip("/"))
        if os.path.isdir(target):
            mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    old = os.path.join(root, ".oldroot")
    os.makedirs(old, exist_ok=True)
    _check(_libc.syscall(SYS_PIVOT_ROOT, root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.oldroot", MNT_DETACH), "umount old root")
    os.rmdir("/.oldroot")
    return root


def main() -> None:
    config = json.loads(sys.argv[1])
    build_root(config)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.setsid()
    os.chdir(config.get("cwd", "/"))
    os.execve(config["argv"][0], config["argv"], config["env"])


if __name__ == "__main__":
    main()
