"""The container's network as its user code meets it: what a restore closed, and
the hint a network error gets where the network is blocked.

A snapshot keeps listening sockets, but established TCP connections can't follow a
restored copy into its own network namespace: CRIU brings them back closed
(engine/criu.py). Their peers are read from ``/proc/net/tcp`` just before the
snapshot, so that a restored copy's log names them and a user knows why a client
library reconnects.
"""

from __future__ import annotations

import collections
import os
import socket
import sys
from pathlib import Path

from coldsnap.wire.container import BLOCK_NETWORK_ENV

# /proc/net/tcp states of a connection a process holds with a peer: all but LISTEN
# (0A), CLOSE (07) and TIME_WAIT (06, which no process holds).
CONNECTED_STATES = frozenset({"01", "02", "03", "04", "05", "08", "09", "0B"})
LISTEN_STATE = "0A"
PROC_NET = Path("/proc/net")
PROC = Path("/proc")

BLOCKED_HINT = (
    "This function has block_network=True: its containers have no network but "
    "loopback (nothing in them may reach another machine, DNS included). Remove "
    "block_network=True, or download what it needs at image build time "
    "(@coldsnap.build(), Image.run_commands)."
)


def open_tcp_connections(proc_net: Path = PROC_NET) -> list[str]:
    """This network namespace's TCP connections, each ``"to HOST:PORT"`` (one it
    opened) or ``"from HOST"`` (one a listener of ours accepted)."""
    return [where for where, _ in _connections(proc_net)]


def connection_owners(proc_net: Path = PROC_NET, proc: Path = PROC) -> dict[str, list[str]]:
    """Each TCP connection (named as ``open_tcp_connections`` names it) -> the processes
    that hold its socket, ``"process PID (COMM)"``, read from ``/proc/PID/fd``."""
    holders: dict[str, list[str]] = {}
    for pid_dir in _entries(proc):
        if not pid_dir.name.isdigit():
            continue
        for fd in _entries(pid_dir / "fd"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                holders.setdefault(target[8:-1], []).append(
                    f"process {pid_dir.name} ({_comm(pid_dir)})")
    owners: dict[str, list[str]] = {}
    for where, inode in _connections(proc_net):
        for holder in holders.get(inode, []):
            if holder not in owners.setdefault(where, []):
                owners[where].append(holder)
    return owners


def _connections(proc_net: Path) -> list[tuple[str, str]]:
    """(name, socket inode) of each connection: see ``open_tcp_connections``."""
    rows = [*_rows(proc_net / "tcp", ipv6=False), *_rows(proc_net / "tcp6", ipv6=True)]
    listening = {local[1] for local, _, state, _ in rows if state == LISTEN_STATE}
    # An accepted connection's peer port is a client's ephemeral one: name its host.
    return [(f"from {_endpoint(peer).rsplit(':', 1)[0]}" if local[1] in listening
             else f"to {_endpoint(peer)}", inode)
            for local, peer, state, inode in rows if state in CONNECTED_STATES]


def closed_at_restore(connections: list[str]) -> str:
    """``closed at restore: 2 TCP connections to 10.0.0.5:443, ...``; "" if none."""
    if not connections:
        return ""
    counts = collections.Counter(connections)
    parts = [f"{n} TCP connection{'s' if n > 1 else ''} {where}" for where, n in counts.items()]
    return "closed at restore: " + ", ".join(parts)


def report_closed(connections: list[str]) -> None:
    """Say in the container's log which connections the restore closed, and why."""
    line = closed_at_restore(connections)
    if line:
        print(f"coldsnap: {line} (they were open when the memory snapshot was taken; a "
              "restored copy lives in a network namespace of its own: reconnect)",
              file=sys.stderr, flush=True)


def add_hint_if_blocked(exc: BaseException) -> None:
    """A call's network error, where the function blocks the network, says so."""
    if os.environ.get(BLOCK_NETWORK_ENV) == "1" and is_network_error(exc):
        exc.add_note(BLOCKED_HINT)


def is_network_error(exc: BaseException | None) -> bool:
    """A connection or name-resolution failure, possibly wrapped by a library."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
            if isinstance(exc, socket.gaierror | ConnectionError | TimeoutError) or exc.errno in (
                101, 113, 111):  # ENETUNREACH, EHOSTUNREACH, ECONNREFUSED
                return True
            reason = getattr(exc, "reason", None)  # urllib's URLError wraps the cause
            if isinstance(reason, BaseException) and is_network_error(reason):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def _rows(path: Path, ipv6: bool) -> list[tuple[tuple[str, int], tuple[str, int], str, str]]:
    """(local, peer, state, socket inode) of each socket in a /proc/net/tcp{,6} file."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []  # no IPv6 in this kernel
    rows = []
    for line in lines:
        fields = line.split()
        if len(fields) > 3:
            inode = fields[9] if len(fields) > 9 else ""
            rows.append((_address(fields[1], ipv6), _address(fields[2], ipv6), fields[3],
                         inode))
    return rows


def _entries(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _comm(pid_dir: Path) -> str:
    try:
        return (pid_dir / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


def _address(field: str, ipv6: bool) -> tuple[str, int]:
    """``0100007F:1F90`` (host byte order, little-endian here) -> ("127.0.0.1", 8080)."""
    hex_ip, hex_port = field.split(":")
    raw = bytes.fromhex(hex_ip)
    # The kernel prints each 32-bit word in host order: reverse the bytes per word.
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    return socket.inet_ntop(family, packed), int(hex_port, 16)


def _endpoint(address: tuple[str, int]) -> str:
    ip, port = address
    if ip.startswith("::ffff:"):  # an IPv4 peer of an IPv6 socket
        ip = ip.removeprefix("::ffff:")
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
