"""Network namespaces for containers: each with a veth to the host and NAT out.

Every container gets a namespace of its own (copies that share one collide on
abstract unix sockets), never one another container used. Making one takes a
handful of `ip` calls, so a pool keeps a few ready and restores never wait for
them; a used one is destroyed and replaced in the background.

Namespace N is ``cs<N>`` with the /30 10.213.<N/64>.<(N%64)*4> between the host
side ``csv<N>`` (.1) and the container's ``eth0`` (.2); iptables rules NAT
their traffic out and drop what goes to the host or to another container. An
owner file in /run/coldsnap-netns names the process holding N, so a crashed
server's namespaces are taken over.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from pathlib import Path

SUBNET = "10.213.0.0/16"
# What a container may send to the host itself: DNS (a resolver on a host
# address), nothing else. Packets from containers jump here from INPUT.
INPUT_CHAIN = "COLDSNAP-INPUT"
INPUT_RULES: tuple[tuple[str, ...], ...] = (
    ("-p", "udp", "--dport", "53", "-j", "RETURN"),
    ("-p", "tcp", "--dport", "53", "-j", "RETURN"),
    ("-j", "DROP"),
)
# What the host does not forward from a container: to another container, to a
# link-local address, or with a source address that is not the container's.
FORWARD_DROPS: tuple[tuple[str, ...], ...] = (
    ("-o", "csv+"),
    ("-d", "169.254.0.0/16"),
    ("!", "-s", SUBNET),
)
HOST_OPENED_RULE = ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN")
MAX_NAMESPACES = 16384
NETNS_DIR = Path("/run/netns")
CREATE_LOCK = "/run/coldsnap-netns.lock"
# One owner file per namespace index, shared by every coldsnap process on the host.
NETNS_OWNERS = Path("/run/coldsnap-netns")


class NetnsError(RuntimeError):
    pass


class Netns:
    def __init__(self, index: int) -> None:
        self.index = index
        self.name = f"cs{index}"
        base = f"10.213.{index // 64}.{(index % 64) * 4}"
        prefix = base.rsplit(".", 1)[0]
        last = int(base.rsplit(".", 1)[1])
        self.host_ip = f"{prefix}.{last + 1}"
        self.container_ip = f"{prefix}.{last + 2}"

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name


class NetnsPool:
    def __init__(self, owner_dir: Path, prewarm: int) -> None:
        self.owner_dir = owner_dir
        self.owner_dir.mkdir(parents=True, exist_ok=True)
        self.prewarm = prewarm
        self._free: list[Netns] = []
        self._all: list[Netns] = []
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._replacing: list[threading.Thread] = []
        self._closed = False
        _enable_nat()
        self.refill()

    def acquire(self) -> Netns:
        with self._lock:
            ns = self._free.pop() if self._free else None
        if ns is None:
            ns = self._create()
        threading.Thread(target=self.refill, daemon=True).start()
        return ns

    def release(self, ns: Netns) -> None:
        """Destroy a used namespace (a container may have changed its routes or
        firewall) and make a fresh one in its place, off the caller's path."""
        worker = threading.Thread(target=self._replace, args=(ns,), daemon=True)
        with self._lock:
            self._replacing = [t for t in self._replacing if t.is_alive()] + [worker]
        worker.start()

    def _replace(self, ns: Netns) -> None:
        with self._lock:
            if ns in self._all:
                self._all.remove(ns)
        self._destroy(ns)
        try:
            self.refill()
        except NetnsError:
            pass  # the next acquire makes one, or says why

    def _destroy(self, ns: Netns) -> None:
        destroy_namespace(ns.index, self.owner_dir)

    def refill(self) -> None:
        while True:
            with self._lock:
                if self._closed or len(self._free) >= self.prewarm:
                    return
            ns = self._create()
            with self._lock:
                if self._closed:
                    self._all.remove(ns)
                    closed = True
                else:
                    self._free.append(ns)
                    closed = False
            if closed:
                self._destroy(ns)
                return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            replacing = list(self._replacing)
        for worker in replacing:
            worker.join(timeout=10)
        with self._lock:
            owned, self._all, self._free = self._all, [], []
        for ns in owned:
            self._destroy(ns)

    def _create(self) -> Netns:
        # `ip netns add` races with itself (it remounts /run/netns): one at a time,
        # across every coldsnap process on the host.
        with self._create_lock, open(CREATE_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._create_locked()

    def _create_locked(self) -> Netns:
        for index in range(MAX_NAMESPACES):
            if not self._claim(index):
                continue
            ns = Netns(index)
            try:
                _setup(ns)
            except NetnsError:
                (self.owner_dir / str(index)).unlink(missing_ok=True)
                raise
            with self._lock:
                self._all.append(ns)
            return ns
        raise NetnsError(f"all {MAX_NAMESPACES} container network namespaces are in use")

    def _claim(self, index: int) -> bool:
        owner = self.owner_dir / str(index)
        try:
            fd = os.open(owner, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                pid = int(owner.read_text() or 0)
            except (OSError, ValueError):
                return False
            if pid and Path(f"/proc/{pid}").exists():
                return False
            owner.unlink(missing_ok=True)  # its server died: take it over
            return self._claim(index)
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True


def destroy_namespace(index: int, owner_dir: Path) -> None:
    """Delete namespace ``index``, its host-side veth and its owner file."""
    _run(["ip", "netns", "del", f"cs{index}"], check=False)
    _run(["ip", "link", "del", f"csv{index}"], check=False)
    (owner_dir / str(index)).unlink(missing_ok=True)


def _setup(ns: Netns) -> None:
    host_if = f"csv{ns.index}"
    _run(["ip", "netns", "del", ns.name], check=False)
    _run(["ip", "link", "del", host_if], check=False)
    _run(["ip", "netns", "add", ns.name])
    _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns.name])
    _disable_ipv6(host_if, ns.name)  # IPv4 only: the iptables rules cover all of it
    _run(["ip", "addr", "add", f"{ns.host_ip}/30", "dev", host_if])
    _run(["ip", "link", "set", host_if, "up"])
    _run(["ip", "-n", ns.name, "addr", "add", f"{ns.container_ip}/30", "dev", "eth0"])
    _run(["ip", "-n", ns.name, "link", "set", "eth0", "up"])
    _run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
    _run(["ip", "-n", ns.name, "route", "add", "default", "via", ns.host_ip])
    # A container's root in a user namespace (userns.py) may bind ports below 1024.
    _run(["nsenter", f"--net={ns.path}", "sysctl", "-qw", "net.ipv4.ip_unprivileged_port_start=0"])


def _disable_ipv6(host_if: str, namespace: str) -> None:
    """No IPv6 on either end of the veth (before they go up): a link-local address
    would reach the host's services past the IPv4 rules."""
    if not Path("/proc/sys/net/ipv6").is_dir():
        return  # a kernel without IPv6
    Path(f"/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6").write_text("1\n")
    # The container can't undo this: it has no CAP_NET_ADMIN.
    _run(["ip", "-n", namespace, "link", "set", "eth0", "addrgenmode", "none"])


def _enable_nat() -> None:
    """Containers reach the world through NAT, but not the host's own services
    (DNS aside), nor each other, nor link-local addresses (a cloud's metadata
    service). Rules match the containers' interfaces, not their source address,
    which a container with CAP_NET_RAW could forge. They stay when the server stops."""
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    _ensure_rule("nat", "POSTROUTING", "-A", "-s", SUBNET, "!", "-d", SUBNET, "-j", "MASQUERADE")
    for stale in (("INPUT", "-s", SUBNET, "-j", INPUT_CHAIN),  # an earlier version's rules
                  ("FORWARD", "-s", SUBNET, "-d", SUBNET, "-j", "DROP")):
        _run(["iptables", "-w", "-D", *stale], check=False)
    _run(["iptables", "-w", "-N", INPUT_CHAIN], check=False)  # fails if it exists: fine
    for rule in INPUT_RULES:
        _ensure_rule("filter", INPUT_CHAIN, "-A", *rule)
    # First in the chain (also where an older version made it): the answers to
    # connections the host opened, e.g. the HTTP gateway's to a web endpoint.
    _ensure_rule("filter", INPUT_CHAIN, "-I", *HOST_OPENED_RULE)
    _ensure_rule("filter", "INPUT", "-I", "-i", "csv+", "-j", INPUT_CHAIN)
    for match in FORWARD_DROPS:
        _ensure_rule("filter", "FORWARD", "-I", "-i", "csv+", *match, "-j", "DROP")


def _ensure_rule(table: str, chain: str, how: str, *spec: str) -> None:
    """Add the rule (``-A`` at the end, ``-I`` at the top) unless it is there."""
    if _run(["iptables", "-w", "-t", table, "-C", chain, *spec], check=False) != 0:
        _run(["iptables", "-w", "-t", table, how, chain, *spec])


def _run(argv: list[str], check: bool = True) -> int:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(argv)} failed: {exc}") from exc
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.returncode
