"""A container's pipes carried over TCP between its host agent and the control plane.

On the agent, a container's three pipes (control in, control out, logs) are each
bridged to one TCP connection the control plane opens (``BridgeListener`` accepts
it, checks the fleet's token, hands it to the container's ``PipeBridge``). On the
control plane, ``SocketContainer`` is a ``Container`` whose streams are those
sockets, so the worker and its channel read and write them as they would pipes;
its exit status, kill and limits are asked of the agent (``ContainerHost``).

Each stream gets a connection of its own: the channel sets its read end
non-blocking, which on a shared socket would make writes non-blocking too.
"""

from __future__ import annotations

import hmac
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from coldsnap.engine import Container

if TYPE_CHECKING:
    from coldsnap.server.fleet.relay_route import Relay

STREAMS = ("ctrl_in", "ctrl_out", "logs")  # control plane -> container, and back twice
HELLO_MAX = 256
POLL_S = 0.1  # how soon a stopped bridge lets go of the pipes

logger = logging.getLogger(__name__)


class HostLost(RuntimeError):
    """The host a container ran on left the fleet (its node died or was removed)."""


# Agent side ---------------------------------------------------------------------------


class PipeBridge:
    """Copies one container's pipes to and from the control plane's connections."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def attach(self, stream: str, sock: socket.socket) -> None:
        self._sockets.append(sock)
        c = self.container
        if stream == "ctrl_in":
            thread = threading.Thread(target=self._socket_to_pipe, args=(sock, c.ctrl_in),
                                      daemon=True, name=f"bridge-{stream}-{c.id}")
        else:
            pipe = c.ctrl_out if stream == "ctrl_out" else c.logs
            thread = threading.Thread(target=self._pipe_to_socket, args=(pipe, sock),
                                      daemon=True, name=f"bridge-{stream}-{c.id}")
        self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop copying, leaving the pipes open (a checkpoint takes them as they are)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.stop()
        for sock in self._sockets:
            _close_socket(sock)

    def _pipe_to_socket(self, pipe: BinaryIO, sock: socket.socket) -> None:
        fd = pipe.fileno()
        try:
            while not self._stop.is_set():
                if not _readable(fd):
                    continue
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                sock.sendall(data)
        except (OSError, ValueError):  # the control plane or the container went away
            pass
        if not self._stop.is_set():
            _close_socket(sock)  # EOF: the control plane's reader sees the container end

    def _socket_to_pipe(self, sock: socket.socket, pipe: BinaryIO) -> None:
        try:
            while not self._stop.is_set():
                if not _readable(sock.fileno()):
                    continue
                data = sock.recv(1 << 16)
                if not data:
                    break
                pipe.write(data)
                pipe.flush()
        except (OSError, ValueError):
            pass


class BridgeListener:
    """Accepts the control plane's stream connections for the containers of one agent."""

    def __init__(self, token: str, host: str = "0.0.0.0") -> None:
        self.token = token  # the control plane's; a restarted one sets its own
        self._bridges: dict[str, PipeBridge] = {}
        self._lock = threading.Lock()
        self._sock = socket.create_server((host, 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="bridge-accept").start()

    def register(self, bridge: PipeBridge) -> None:
        with self._lock:
            self._bridges[bridge.container.id] = bridge

    def find(self, container_id: str) -> PipeBridge | None:
        with self._lock:
            return self._bridges.get(container_id)

    def remove(self, container_id: str) -> PipeBridge | None:
        with self._lock:
            return self._bridges.pop(container_id, None)

    def close(self) -> None:
        _close_socket(self._sock)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(sock,), daemon=True,
                             name="bridge-hello").start()

    def _greet(self, sock: socket.socket) -> None:
        """Read ``TOKEN CONTAINER STREAM\\n``; attach the socket, or drop it."""
        sock.settimeout(10)
        hello = b""
        try:
            while not hello.endswith(b"\n") and len(hello) < HELLO_MAX:
                chunk = sock.recv(1)
                if not chunk:
                    break
                hello += chunk
        except OSError:
            hello = b""
        parts = hello.strip().split()
        with self._lock:
            bridge = self._bridges.get(parts[1].decode()) if len(parts) == 3 else None
        if (bridge is None or not hmac.compare_digest(parts[0], self.token.encode())
                or parts[2].decode() not in STREAMS):
            logger.warning("dropped a bridge connection with a bad hello")
            _close_socket(sock)
            return
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bridge.attach(parts[2].decode(), sock)


def _readable(fd: int) -> bool:
    """Whether ``fd`` has data (or EOF) within POLL_S; poll, not select: an agent with
    many containers holds fds past select's 1024."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(POLL_S * 1000))


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# Control-plane side ---------------------------------------------------------------------


class ContainerHost(Protocol):
    """What a SocketContainer asks of its agent; each raises HostLost if the host left."""

    host: str

    def poll(self, container_id: str) -> int | None: ...

    def kill(self, container_id: str) -> None: ...

    def release(self, container_id: str) -> None: ...

    def limits_reached(self, container_id: str) -> list[str]: ...


class SocketContainer(Container):
    """A container on another host: its streams are sockets to that host's agent."""

    def __init__(self, container_id: str, pid: int, agent: ContainerHost,
                 bridge_address: tuple[str, int], token: str,
                 timings: dict[str, float] | None = None) -> None:
        socks = {s: _connect(bridge_address, token, container_id, s) for s in STREAMS}
        self._sockets = list(socks.values())
        # Unbuffered readers: the channel and the log pump read their fds directly.
        reader = cast(Callable[[socket.socket], BinaryIO],
                      lambda sock: sock.makefile("rb", buffering=0))
        super().__init__(container_id, pid, socks["ctrl_in"].makefile("wb"),
                         reader(socks["ctrl_out"]), reader(socks["logs"]), timings)
        self._agent = agent
        self.lost: str | None = None
        self.relay: Relay | None = None  # its web ports through its host's relay (the gateway's)
        self.limits_reached = self._limits

    def lose(self, reason: str) -> None:
        """Its host left: it counts as exited, and reads of its streams end now."""
        self.lost = f"host lost: {reason}"
        if self.returncode is None:
            self.returncode = -1
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self._agent.poll(self.id)
            except HostLost as exc:
                self.lose(str(exc))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.05)  # each poll is a call to the agent
        return self.returncode

    def kill(self) -> None:
        if self.lost is None:
            try:
                self._agent.kill(self.id)
            except HostLost as exc:
                self.lose(str(exc))
        if self.returncode is None:
            self.returncode = -9
        self.close()

    def close(self) -> None:
        first = bool(self._sockets)
        for sock in self._sockets:
            _close_socket(sock)  # the fd goes once its file object closes too
        self._sockets = []
        super().close()
        if first and self.lost is None:
            try:
                self._agent.release(self.id)
            except HostLost:
                pass

    def _limits(self) -> list[str]:
        if self.lost is not None:
            return [self.lost]
        try:
            return self._agent.limits_reached(self.id)
        except HostLost as exc:
            self.lose(str(exc))
            return [self.lost or str(exc)]


def _connect(address: tuple[str, int], token: str, container_id: str,
             stream: str) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"{token} {container_id} {stream}\n".encode())
    return sock
