"""What a hostile function would try, as probes the isolation tests call by name.

``Probe.fresh`` runs in a plain container, ``Restored.run`` in one restored from a
memory snapshot; both answer ``(probe name, *args)`` with plain data, errors as
errno names, so a test can compare a container's answer with the host's.
"""

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import coldsnap

app = coldsnap.App("isolation-probe", image=coldsnap.Image.from_host())  # the host, masked
MADE_IN = os.environ.get("COLDSNAP_CONTAINER_ID", "")  # at import: the snapshot phase's id
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc))


def read(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return {"data": f.read().decode(errors="replace")}
    except OSError as exc:
        return {"error": _errno_name(exc)}


def listdir(path: str) -> dict:
    try:
        return {"entries": sorted(os.listdir(path))}
    except OSError as exc:
        return {"error": _errno_name(exc)}


def own_tmp(text: str) -> dict:
    with open("/tmp/written-by-the-container", "w") as f:
        f.write(text)
    return read("/tmp/written-by-the-container")


def shm(host_key: int, own_key: int) -> dict:
    """Can the host's SysV segment ``host_key`` be found? Can we make one of our own?"""
    ctypes.set_errno(0)
    found = _libc.shmget(host_key, 0, 0)
    host = "found" if found >= 0 else errno.errorcode[ctypes.get_errno()]
    made = _libc.shmget(own_key, 4096, 0o1000 | 0o600)  # IPC_CREAT
    listed = [int(line.split()[0]) for line in open("/proc/sysvipc/shm").read().splitlines()[1:]]
    return {"host_segment": host, "own_segment_made": made >= 0, "keys_listed": listed}


def namespaces() -> dict:
    kinds = ("ipc", "uts", "cgroup", "pid", "mnt", "net")
    ids = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in kinds}
    try:
        socket.sethostname("renamed-by-a-container")
        renamed = "renamed"
    except OSError as exc:
        renamed = _errno_name(exc)
    return {"ids": ids, "hostname": socket.gethostname(), "sethostname": renamed}


def processes() -> dict:
    """Our pid, pid 1's command line, and zombies left by an orphan that exited."""
    if os.fork() == 0:  # an orphan: its parent exits at once, it a moment later
        if os.fork() == 0:
            time.sleep(0.2)
            os._exit(0)
        os._exit(0)
    os.wait()
    time.sleep(1.0)
    zombies = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                zombies.append(int(entry))
    init = open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode()
    return {"pid": os.getpid(), "init": init, "zombies": zombies}


SYSCALL_PROBE = r"""
import ctypes, errno, json, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)

def errno_of(nr, *args):
    ctypes.set_errno(0)
    result = libc.syscall(nr, *(ctypes.c_long(a) for a in args))
    if nr == 56 and result == 0:  # clone succeeded: this is the child
        os._exit(0)
    if nr == 56 and result > 0:
        os.waitpid(result, 0)
    if nr == 323 and result >= 0:
        os.close(result)
    return "allowed" if result >= 0 else errno.errorcode[ctypes.get_errno()]

CLONE_NEWUSER, CLONE_FILES, SIGCHLD = 0x10000000, 0x400, 17
results = {
    "clone(NEWUSER)": errno_of(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "unshare(NEWUSER)": errno_of(272, CLONE_NEWUSER),
    "unshare(FILES)": errno_of(272, CLONE_FILES),
    "keyctl": errno_of(250, 0, -4, 0, 0, 0),
    "add_key": errno_of(248, 0, 0, 0, 0, -4),
    "request_key": errno_of(249, 0, 0, 0, -4),
    "bpf": errno_of(321, 0, 0, 0),
    "perf_event_open": errno_of(298, 0, 0, -1, -1, 0),
    "userfaultfd": errno_of(323, 1),
    "io_uring_setup": errno_of(425, 1, 0),
    "io_uring_enter": errno_of(426, -1, 0, 0, 0, 0, 0),
    "io_uring_register": errno_of(427, -1, 0, 0, 0),
    "clone3": errno_of(435, 0, 0),
}
box = []
thread = threading.Thread(target=lambda: box.append("ran"))
thread.start(); thread.join()
results["thread"] = box[0]
results["subprocess"] = subprocess.run(["true"]).returncode
print(json.dumps(results))
"""


def syscalls() -> dict:
    """Each refused syscall's errno, from a child (it inherits the filter), and the
    filter mode in /proc/self/status."""
    done = subprocess.run([sys.executable, "-c", SYSCALL_PROBE], capture_output=True,
                          text=True, timeout=60)
    status = open("/proc/self/status").read()
    mode = next(line.split()[1] for line in status.splitlines() if line.startswith("Seccomp:"))
    return {"results": json.loads(done.stdout or "{}"), "stderr": done.stderr, "seccomp": mode}


def network(dns_port: int, target: str) -> dict:
    """UDP to the host's DNS port (through the gateway) and TCP to ``target``
    (host:port, where the host ``gateway`` means the host's end of our veth)."""
    gateway = _gateway()
    answer: dict = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(3)
        udp.sendto(b"probe", (gateway, dns_port))
        try:
            answer["dns"] = udp.recv(64).decode()
        except OSError as exc:
            answer["dns"] = type(exc).__name__
    host, port = target.rsplit(":", 1)
    host = gateway if host == "gateway" else host
    try:
        with socket.create_connection((host, int(port)), timeout=3) as conn:
            answer["tcp"] = "ok:" + conn.recv(16).decode()
    except OSError as exc:
        answer["tcp"] = type(exc).__name__
    return answer


def spoof(source: str, target: str) -> dict:
    """Send one UDP datagram to ``target`` with IP source ``source`` (raw socket;
    none for an empty source)."""
    import struct

    if not source:
        return {"own_address": _own_address(), "sent": False}
    host, port = target.rsplit(":", 1)
    payload = f"from {source}".encode()
    udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         socket.inet_aton(source), socket.inet_aton(host))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(header + udp, (host, 0))
    return {"own_address": _own_address(), "sent": True}


def _gateway() -> str:
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    return ""


def _own_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((_gateway(), 9))
        return s.getsockname()[0]


def sysfs() -> dict:
    """What /sys shows and whether any of it takes a write: the CPUs (as lscpu and
    joblib read them), the network devices, the masked dirs, the mount's flags."""
    cpu = "/sys/devices/system/cpu"
    online = read(f"{cpu}/online")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=60)
    writes = {}
    for path in ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/class/net/lo/mtu",
                 "/sys/kernel/uevent_helper", "/sys/fs/cgroup/cgroup.procs"):
        try:
            with open(path, "w") as f:
                f.write("1")
            writes[path] = "written"
        except OSError as exc:
            writes[path] = _errno_name(exc)
    return {"online": online.get("data", online.get("error", "")).strip(),
            "cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "lscpu_rc": lscpu.returncode, "lscpu_err": lscpu.stderr.strip(),
            "lscpu_cpus": [line.split(":")[1].strip() for line in lscpu.stdout.splitlines()
                           if line.startswith("CPU(s):")],
            "net": listdir("/sys/class/net").get("entries", []),
            "firmware": listdir("/sys/firmware"), "cgroup": listdir("/sys/fs/cgroup"),
            "debug": listdir("/sys/kernel/debug"),
            "read_only": bool(os.statvfs("/sys").f_flag & os.ST_RDONLY),
            "writes": writes, "writable": _writable_under("/sys")}


def _writable_under(top: str) -> list[str]:
    """Files under ``top`` that open for writing (the first few), without writing."""
    found: list[str] = []
    for directory, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(directory, name)
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                found.append(path)
            except OSError:
                continue
            if len(found) >= 5:
                return found
    return found


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(30)  # never reached when the kill takes the container down


def terminate_init() -> None:
    """SIGTERM to pid 1, which must hand it on to the runtime: the exit hook runs."""
    os.kill(1, signal.SIGTERM)
    time.sleep(30)


PROBES = {f.__name__: f for f in (read, listdir, own_tmp, shm, namespaces, processes,
                                  syscalls, network, spoof, sysfs, kill_self,
                                  terminate_init)}


def _run(name: str, *args):
    restored = os.environ.get("COLDSNAP_CONTAINER_ID", "") != MADE_IN
    return {"restored": restored, **(PROBES[name](*args) or {})}


@app.cls()
class Probe:
    @coldsnap.method()
    def fresh(self, name: str, *args):
        return _run(name, *args)

    @coldsnap.exit()
    def stop(self):
        print("probe exit hook ran", flush=True)


@app.function(enable_memory_snapshot=True)
def restored(name: str, *args):
    return _run(name, *args)
