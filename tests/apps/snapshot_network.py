"""The network in the snapshot phase, as Modal's snapshot examples use it.

``OUTSIDE`` (set by tests/isolation/test_snapshot_network.py when it writes this app
out) is a host beyond the container host: TCP 8080 answers ``hi`` and hangs up,
TCP 8081 keeps each connection open and echoes it.

- ``LocalServer``: starts an HTTP server subprocess on 127.0.0.1 in
  ``enter(snap=True)`` and polls it until it answers, as Modal's examples do; its
  restored copies ask it again.
- ``Outbound`` (and ``OutboundOwnRoot``, on an image of its own): reaches OUTSIDE in
  ``enter(snap=True)`` and keeps a connection to it open across the snapshot.
- ``Blocked`` / ``blocked_plain``: ``block_network=True``, with and without a snapshot.
- ``BlockedDownload``: a download in ``enter(snap=True)`` under ``block_network``.
- ``Pending``: a connection to its own listener that the listener never accepted.
- ``OwnAddress``: a listener bound to the snapshot phase's own address, which no
  restored copy has.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import coldsnap

OUTSIDE = "10.214.0.2"
LOCAL_PORT = 8765
app = coldsnap.App("snapshot-network", image=coldsnap.Image.from_host())
MADE_IN = os.environ.get("COLDSNAP_CONTAINER_ID", "")  # at import: the snapshot phase's id


def restored() -> bool:
    return os.environ.get("COLDSNAP_CONTAINER_ID", "") != MADE_IN


def tcp(host: str, port: int, timeout: float = 3.0) -> str:
    """``ok:<first bytes>``, or the error's name."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            return "ok:" + conn.recv(16).decode()
    except OSError as exc:
        return type(exc).__name__


def loopback() -> str:
    """A listener on 127.0.0.1 of our own, reached through loopback."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=3) as conn:
            peer, _ = server.accept()
            peer.sendall(b"lo")
            peer.close()
            return "ok:" + conn.recv(2).decode()


def wait_for_http(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@app.cls(enable_memory_snapshot=True)
class LocalServer:
    @coldsnap.enter(snap=True)
    def start_server(self):
        site = os.path.join(os.getcwd(), "site")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "health"), "w") as f:
            f.write("healthy")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(LOCAL_PORT), "--bind", "127.0.0.1",
             "--directory", site], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.before = wait_for_http(f"http://127.0.0.1:{LOCAL_PORT}/health")

    @coldsnap.method()
    def ask(self) -> dict:
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{LOCAL_PORT}/health", timeout=5) as r:
            answer = r.read().decode()
        return {"restored": restored(), "before": self.before, "after": answer,
                "server_pid_alive": self.server.poll() is None,
                "seconds": time.monotonic() - started}


class ReachOut:
    @coldsnap.enter(snap=True)
    def reach_out(self):
        self.in_snapshot_phase = tcp(OUTSIDE, 8080)
        self.loopback_in_snapshot_phase = loopback()
        self.held = socket.create_connection((OUTSIDE, 8081), timeout=5)
        self.held.sendall(b"ping")
        self.echo_before = self.held.recv(4).decode()

    @coldsnap.method()
    def state(self) -> dict:
        try:
            self.held.sendall(b"again")
            answer = self.held.recv(5)
            held = "ok:" + answer.decode() if answer else "closed"
        except OSError as exc:
            held = type(exc).__name__
        return {"restored": restored(), "in_snapshot_phase": self.in_snapshot_phase,
                "loopback_in_snapshot_phase": self.loopback_in_snapshot_phase,
                "echo_before": self.echo_before, "held_after": held,
                "now": tcp(OUTSIDE, 8080)}


@app.cls(enable_memory_snapshot=True)
class Outbound(ReachOut):
    pass


@app.cls(enable_memory_snapshot=True, image=coldsnap.Image.debian_slim())
class OutboundOwnRoot(ReachOut):
    """The same in a root of the image's own, so in a user namespace (where CRIU dumps
    from inside the container's network namespace: engine/criu.py)."""


@app.cls(enable_memory_snapshot=True, block_network=True)
class Blocked:
    @coldsnap.enter(snap=True)
    def look_around(self):
        self.outside_in_snapshot_phase = tcp(OUTSIDE, 8080)
        self.loopback_in_snapshot_phase = loopback()

    @coldsnap.method()
    def state(self) -> dict:
        return {"restored": restored(),
                "outside_in_snapshot_phase": self.outside_in_snapshot_phase,
                "loopback_in_snapshot_phase": self.loopback_in_snapshot_phase,
                "outside": tcp(OUTSIDE, 8080), "loopback": loopback(),
                "interfaces": sorted(name for _, name in socket.if_nameindex())}

    @coldsnap.method()
    def download(self) -> str:
        with urllib.request.urlopen(f"http://{OUTSIDE}:8080/", timeout=3) as response:
            return response.read().decode()


@app.function(block_network=True)
def blocked_plain() -> dict:
    return {"restored": restored(), "outside": tcp(OUTSIDE, 8080), "loopback": loopback(),
            "interfaces": sorted(name for _, name in socket.if_nameindex())}


@app.cls(enable_memory_snapshot=True, block_network=True)
class BlockedDownload:
    @coldsnap.enter(snap=True)
    def download(self):
        socket.create_connection((OUTSIDE, 8080), timeout=3)

    @coldsnap.method()
    def run(self) -> str:
        return "unreachable"


def own_address() -> str:
    """This namespace's address on its way out (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((OUTSIDE, 9))
        return probe.getsockname()[0]


@app.cls(enable_memory_snapshot=True)
class OwnAddress:
    @coldsnap.enter(snap=True)
    def bind(self):
        self.server = socket.create_server((own_address(), 8123))

    @coldsnap.method()
    def ask(self) -> dict:
        return {"restored": restored(), "bound": self.server.getsockname()[0]}


@app.cls(enable_memory_snapshot=True)
class Pending:
    @coldsnap.enter(snap=True)
    def connect_unaccepted(self):
        self.server = socket.create_server(("127.0.0.1", 8124))
        self.client = socket.create_connection(("127.0.0.1", 8124))  # waits in the queue

    @coldsnap.method()
    def ask(self) -> dict:
        self.server.settimeout(1)
        try:
            self.server.accept()[0].close()
            queued = "accepted"
        except OSError as exc:
            queued = type(exc).__name__
        return {"restored": restored(), "queued": queued, "now": loopback()}
