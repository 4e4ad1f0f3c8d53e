"""Pid 1 of a fresh container: build its root filesystem, then exec the runtime.

Run as ``unshare --pid --mount --ipc --uts --cgroup [--net] --fork --propagation
private -- python -m coldsnap.engine.nsinit`` with its config as JSON on stdin. It

1. mounts an overlay (lower: image layers, the mask layer over what the
   container must not see (masks.py), then the host root; upper: the container's
   own dir, which the server seeded with a private ``/dev``) and a private ``/proc``,
2. ``pivot_root``s into it (CRIU refuses a chroot) and drops the old root,
3. shrinks the capability bounding set and installs the seccomp filter
   (seccomp.py),
4. becomes a session leader (CRIU can't dump a tree whose session leader is
   outside it) and execs a tiny init (``tini``, a static binary from Debian) that
   forks the runtime, reaps zombies, forwards signals to it and exits with its
   status (128 + the signal if one killed it). So user code is not pid 1: a
   process that kills itself takes the container down, as the caller expects.

In a user namespace (``userns`` in the config: a root of the image's own, see
userns.py) the server has mounted the root and its binds already, and starts this
without ``unshare``: it makes the namespaces itself (``enter_user_namespace``), then
goes on from step 1's /proc as pid 1 of them.

Few mounts exist inside a container (the overlay root, /proc, a read-only /sys
and its masks, ``mount_sysfs``): every extra mount costs a restore a few
milliseconds. Kept to the standard library: it
runs before anything else is set up.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
MS_REMOUNT = 32
MS_BIND = 4096
MS_RDONLY = 1
SYS_PIVOT_ROOT = 155  # x86_64
READ_ONLY_KERNEL_FS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
# Parts of /sys a container must not read (an empty dir over each, as Docker
# masks them): firmware tables and EFI variables, the host's DMI identity (serial
# numbers, UUID), RAPL energy counters (a power side channel). Debugfs, securityfs,
# tracefs, bpf and the cgroup tree are mounts of their own, absent from a fresh sysfs.
SYSFS_MASKS = ("firmware", "devices/virtual/dmi", "devices/virtual/powercap")
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x2000000
CLONE_NEWUTS = 0x4000000
CLONE_NEWIPC = 0x8000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_CAPBSET_DROP = 24
ADDR_NO_RANDOMIZE = 0x0040000  # personality(2): no ASLR
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# chown, dac_override, fowner, fsetid, kill, setgid, setuid, setpcap,
# net_bind_service, net_raw, sys_chroot, audit_write, setfcap
KEPT_CAPABILITIES = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31})

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()),
        f"mount {fstype} on {target}",
    )


def overlay_options(lower: list[str], upper: str, work: str) -> str:
    """A container root's overlay options (fresh and restored alike). Redirects are
    followed: the mask layer shows the runtime's host dirs through them (masks.py)."""
    return f"lowerdir={':'.join(lower)},upperdir={upper},workdir={work},redirect_dir=follow"


def build_root(config: dict) -> str:
    root = config["root"]
    host = ["/"] if config.get("host_root", True) else []  # else the image's root is lowest
    mount("none", "/", "", MS_REC | MS_PRIVATE)
    mount("overlay", root, "overlay", 0,
          overlay_options([*config.get("layers", []), *host], config["upper"], config["work"]))
    enter_root(root, config.get("binds", []), config.get("volumes", []))
    return root


def enter_root(root: str, binds: list[str], volumes: list[list[str]] | None = None,
               mounted_sysfs: bool = False) -> None:
    """Mount /proc and /sys in ``root`` (and the ``binds`` and ``volumes``: [host dir,
    path] pairs, read-write), then make it the root. ``mounted_sysfs``: /sys is there
    already (a user namespace's, see ``enter_user_namespace``)."""
    proc = os.path.join(root, "proc")
    os.makedirs(proc, exist_ok=True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Kernel tunables stay the host's: /proc/sys read-only (core_pattern would
    # otherwise run a program of the container's choosing on the host).
    for path in ("sys", "sysrq-trigger"):
        target = os.path.join(proc, path)
        if not os.path.exists(target):
            continue
        mount(target, target, "", MS_BIND)
        mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY)
    if not mounted_sysfs:
        mount_sysfs(root)
    for path in binds:
        bind_read_only(path, root + path)
    for source, path in volumes or []:
        bind_read_write(source, root + path)
    old = os.path.join(root, ".oldroot")
    os.makedirs(old, exist_ok=True)
    _check(_libc.syscall(SYS_PIVOT_ROOT, root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.oldroot", MNT_DETACH), "umount old root")
    os.rmdir("/.oldroot")


def mount_sysfs(root: str) -> None:
    """A read-only sysfs at ``root``/sys, so that lscpu, os.sched_getaffinity's
    neighbours and joblib find the CPUs. It shows the network devices of the mounting
    process's network namespace: the container's own. ``SYSFS_MASKS`` go on top."""
    target = os.path.join(root, "sys")
    os.makedirs(target, exist_ok=True)
    mount("sysfs", target, "sysfs", READ_ONLY_KERNEL_FS)
    # Each mask is a read-only bind of an empty dir of this very sysfs (a fresh
    # sysfs's cgroup mount point), not a tmpfs: CRIU restores a tmpfs by running tar
    # over its dumped contents, ~20 ms a restore; a bind costs next to nothing.
    empty = os.path.join(target, "fs", "cgroup")
    for path in SYSFS_MASKS:
        masked = os.path.join(target, path)
        if os.path.isdir(masked):
            mount(empty, masked, "", MS_BIND)
            mount("", masked, "", MS_BIND | MS_REMOUNT | READ_ONLY_KERNEL_FS)


def enter_user_namespace(config: dict) -> int:
    """As the host's root: make the container's namespaces, user namespace first
    (it owns the others, as CRIU requires), and fork pid 1 of them. Returns 0 in
    that child (still the host's uid: see ``become_root``); the child's pid here.

    The network namespace (pre-made, joined by nsenter, or new in the snapshot
    phase) belongs to the host's user namespace, so that `criu restore` can put a
    restored tree in one. A helper child writes the id maps (a process can't map
    ids other than its own into a namespace it is in). Nothing is read from the
    host's filesystem after the unshare: a mapped root may not reach this Python.
    """
    join_cgroups(config.get("cgroups", []))  # its cgroup namespace comes below
    if config.get("new_net"):
        _check(_libc.unshare(CLONE_NEWNET), "unshare the network namespace")
        allow_low_ports()
    # Still the host's root, in the container's network namespace (which the host's
    # user namespace owns: a mapped root may not mount sysfs for it) and in the
    # server's mount namespace, where the root is mounted: the mounts come along
    # into the container's, locked there (it can't unmount a mask nor make it writable).
    mount_sysfs(config["root"])
    maps = config["userns"]
    ready_r, ready_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(ready_w)
        os.read(ready_r, 1)
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{os.getppid()}/{name}", "w") as f:
                f.write(maps)
        os._exit(0)
    os.close(ready_r)
    _check(_libc.unshare(CLONE_NEWUSER), "unshare the user namespace")
    os.write(ready_w, b"1")
    os.close(ready_w)
    _, status = os.waitpid(helper, 0)
    if status != 0:
        raise OSError(f"writing the user namespace's id maps failed ({status})")
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
                         | CLONE_NEWCGROUP), "unshare the container's namespaces")
    return os.fork()


def become_root() -> None:
    """Take the user namespace's uid and gid 0. Last: till then this process is the
    host's root, the owner of the run dir's path to the container's root."""
    _check(_libc.setresgid(0, 0, 0), "setresgid")
    _check(_libc.setgroups(0, None), "setgroups")
    _check(_libc.setresuid(0, 0, 0), "setresuid")


def allow_low_ports() -> None:
    """Let a mapped root bind ports below 1024 in this network namespace, as the
    host's root could (it has no CAP_NET_BIND_SERVICE in a namespace of the host's)."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as f:
        f.write("0")


def wait_and_exit(pid: int) -> None:
    """Wait for ``pid`` and exit as it did (``unshare --fork`` does the same): die by
    the signal that killed it, so the server sees a SIGKILL (terminate, the memory
    limit) as one."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number != signal.SIGKILL:  # its action can't be set (EINVAL); it kills anyway
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status))


def bind_read_only(source: str, target: str) -> None:
    """Show the host's ``source`` at ``target`` inside the new root, read-only."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "a").close()
    mount(source, target, "", MS_BIND | MS_REC)
    mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY)


def bind_read_write(source: str, target: str) -> None:
    """Show the host's directory ``source`` at ``target`` inside the new root: a volume.
    One mount, not recursive: CRIU treats it as an external mount (criu.py)."""
    os.makedirs(target, exist_ok=True)
    mount(source, target, "", MS_BIND)


def drop_capabilities() -> None:
    """Shrink the bounding set to Docker's default capabilities, minus CAP_MKNOD.

    After the exec the runtime (still uid 0) holds only these: no mounts, no
    modules, no raw devices, no network configuration, no ptrace. CRIU saves
    and restores the reduced sets with the process.
    """
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        if cap not in KEPT_CAPABILITIES:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


def install_seccomp(filter_bytes: bytes) -> None:
    """Install a seccomp filter (packed ``struct sock_filter``s, see seccomp.py).

    It holds across exec and for every child. Installing needs CAP_SYS_ADMIN
    (still in the effective set here, before the exec) or no_new_privs.
    """

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    fprog = SockFprog(len(filter_bytes) // 8, filter_bytes)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
           "install the seccomp filter")


def init_argv(config: dict) -> list[str]:
    """The argv that starts the runtime under the container's init (see the docstring)."""
    init = config.get("init")
    if not init:
        return list(config["argv"])
    if not os.access(init, os.X_OK):
        raise FileNotFoundError(f"the container's init {init} is missing from its root: "
                                "install it on the host (apt-get install tini; "
                                "scripts/setup.sh does it)")
    return [init, "--", *config["argv"]]


def enter_cgroups(groups: list[str]) -> None:
    """Join the container's cgroups, then make its cgroup namespace there, so that the
    namespace's root is its own group (as CRIU wants it: see cgroups.py)."""
    join_cgroups(groups)
    _check(_libc.unshare(CLONE_NEWCGROUP), "unshare the cgroup namespace")


def join_cgroups(groups: list[str]) -> None:
    for group in groups:
        with open(os.path.join(group, "cgroup.procs"), "w") as procs:
            procs.write("0")  # "0": the writer itself


def main() -> None:
    config = json.loads(sys.stdin.buffer.read())  # not argv, which `ps` shows (env, secrets)
    if config.get("userns"):
        pid = enter_user_namespace(config)
        if pid:
            wait_and_exit(pid)
        # The host mounted the root (and its binds); a fresh bind of it is ours to move.
        mount("none", "/", "", MS_REC | MS_PRIVATE)
        mount(config["root"], config["root"], "", MS_BIND | MS_REC)
        enter_root(config["root"], [], mounted_sysfs=True)
        become_root()
    else:
        enter_cgroups(config.get("cgroups", []))
        build_root(config)
    argv = init_argv(config)
    if config.get("fixed_layout"):  # kept across exec, by every child; before seccomp
        ctypes.CDLL(None).personality(ADDR_NO_RANDOMIZE)
    drop_capabilities()
    if config.get("seccomp"):
        install_seccomp(bytes.fromhex(config["seccomp"]))
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.setsid()
    cwd = config.get("cwd", "/")
    os.makedirs(cwd, exist_ok=True)  # as Docker makes a WORKDIR (or /root) the image lacks
    os.chdir(cwd)
    os.execve(argv[0], argv, config["env"])


if __name__ == "__main__":
    main()
