"""The server's client connections: accepting them, and reading each one's requests.

What an operator can count on (docs/server.md, "Limits"):

- at most ``max_connections`` connections are served at once; one more is
  answered ``busy`` and closed, never left waiting;
- a connection that sends nothing for ``idle_timeout_s`` (between requests, or
  in the middle of one) is closed;
- out of file descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS), the
  accept loop answers the waiting client ``busy`` through a spare descriptor,
  backs off, logs once, and keeps accepting;
- a request's token is checked as soon as its header arrives, and its blob's
  declared length against ``max_payload_bytes``: a refused blob is never read.
"""

from __future__ import annotations

import io
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from coldsnap.server.errors import ApiError, Reply
from coldsnap.server.process import RESOURCE_ERRNOS, Exhaustion
from coldsnap.settings import Settings
from coldsnap.wire import ops
from coldsnap.wire.errors import BAD_REQUEST, BUSY, TOO_LARGE, UNAUTHORIZED
from coldsnap.wire.framing import (
    ChannelClosed,
    PayloadTooLarge,
    ProtocolError,
    read_message,
    write_message,
)
from coldsnap.wire.token import token_matches

logger = logging.getLogger(__name__)

# Runs one authorised request; the reply, or None when a streaming client hung up.
Answer = Callable[[dict[str, Any], bytes | None, BinaryIO], Reply | None]


class Connections:
    """The accept loops of the server's listeners and the threads of their connections."""

    def __init__(self, settings: Settings, token: str, answer: Answer,
                 stopping: threading.Event, max_connections: int) -> None:
        self._settings = settings
        self._token = token
        self._answer = answer
        self._stopping = stopping
        self._max = max_connections
        self._count = 0
        self._lock = threading.Lock()
        # Held for the moment the process runs out of fds: closed, it lets the accept
        # loop take the waiting connection and answer it rather than leave it hanging.
        self._spare: int | None = _open_spare()
        self._spare_lock = threading.Lock()  # the unix and tcp accept loops share it
        self._lingering = LingeringClose()

    def accept_forever(self, listener: socket.socket) -> None:
        """Accept until the server stops; no error but the listener closing ends it."""
        exhaustion = Exhaustion("accepting connections")
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                if self._stopping.is_set() or listener.fileno() == -1:
                    return  # closed at shutdown
                if exc.errno in RESOURCE_ERRNOS:
                    self._shed_one(listener)
                time.sleep(exhaustion.failed(exc))
                continue
            try:
                admitted = self._admit(conn)
            except Exception as exc:  # a bug must not end the loop: nobody could connect
                logger.exception("accepting a connection failed")
                conn.close()
                time.sleep(exhaustion.failed(exc))
                continue
            if admitted:
                exhaustion.recovered()
            else:
                time.sleep(exhaustion.failed(RuntimeError("can't start a thread")))

    def _admit(self, conn: socket.socket) -> bool:
        """Serve ``conn`` on a thread of its own, or answer it busy; False when no thread
        could start (out of memory, or of threads)."""
        with self._lock:
            full = self._count >= self._max
            if not full:
                self._count += 1
        if full:
            _refuse(conn, BUSY, f"server busy: it serves {self._max} connections at once "
                    "(COLDSNAP_MAX_CONNECTIONS, at most half its open-file limit); try again "
                    "shortly, or raise the limit", self._lingering)
            return True
        try:
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name="conn").start()
        except RuntimeError:  # can't start new thread
            self._release()
            _refuse(conn, BUSY, "server busy: it can't start a thread for this connection "
                    "(out of memory or threads); try again shortly")
            return False
        return True

    def _shed_one(self, listener: socket.socket) -> None:
        """Out of fds: free the spare, answer one waiting client busy, take the spare back.
        EMFILE comes whether or not a client waits: the accept must not block."""
        with self._spare_lock:
            if self._spare is None:
                self._spare = _open_spare()
                return
            os.close(self._spare)
            self._spare = None
            listener.settimeout(0)
            try:
                conn, _ = listener.accept()
            except OSError:
                conn = None
            finally:
                listener.settimeout(None)
            if conn is not None:
                _refuse(conn, BUSY, "server busy: it is out of file descriptors (EMFILE); "
                        "try again shortly, or raise its open-file limit (`ulimit -n`)")
            self._spare = _open_spare()

    def _release(self) -> None:
        with self._lock:
            self._count -= 1

    def _serve(self, conn: socket.socket) -> None:
        try:
            idle = self._settings.idle_timeout_s
            conn.settimeout(idle if idle > 0 else None)  # 0: never
            with conn, conn.makefile("rb") as rfile, conn.makefile("wb") as wfile:
                while self._serve_one(rfile, wfile):
                    pass
        except OSError:
            pass  # makefile failing for lack of memory: the connection just closes
        finally:
            self._release()

    def _serve_one(self, rfile: BinaryIO, wfile: BinaryIO) -> bool:
        """Read and answer one request; False when the connection must close."""
        try:
            header, blob = read_message(rfile, max_blob=self._settings.max_payload_bytes,
                                        on_header=self._check_token)
        except ApiError as refused:  # before its blob is read: hang up on the rest
            _try_send(wfile, refused.to_header())
            return False
        except TimeoutError:
            logger.debug("closed a connection silent for %g s (COLDSNAP_IDLE_TIMEOUT_S)",
                         self._settings.idle_timeout_s)
            return False
        except (ChannelClosed, OSError):
            return False
        except ProtocolError as exc:
            # The stream can't be resynchronised: answer, then hang up.
            _try_send(wfile, _framing_error(exc).to_header())
            return False
        reply = self._answer(header, blob, wfile)
        if reply is None:
            return False  # a streaming client hung up
        return _try_send(wfile, reply[0], reply[1])

    def _check_token(self, header: dict[str, Any]) -> None:
        if not token_matches(self._token, header.pop(ops.TOKEN, None)):
            path = self._settings.token_path
            raise ApiError(UNAUTHORIZED, "request refused: missing or wrong token. Clients "
                           f"read it from {path} (mode 0600, readable by the server's user "
                           "only)")


def connection_cap(settings: Settings, open_file_limit: int) -> int:
    """``max_connections``, held to half the open-file limit: the rest is for containers'
    pipes, snapshots and the database."""
    cap = max(1, min(settings.max_connections, open_file_limit // 2))
    if cap < settings.max_connections:
        logger.warning("serving at most %d connections at once, not %d "
                       "(COLDSNAP_MAX_CONNECTIONS): half the open-file limit of %d",
                       cap, settings.max_connections, open_file_limit)
    return cap


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _refuse(conn: socket.socket, kind: str, message: str,
            lingering: LingeringClose | None = None) -> None:
    """Answer a connection we won't serve without blocking the accept loop, and close it,
    or leave the closing to ``lingering`` (out of fds, it closes at once: no fd to spare)."""
    frame = io.BytesIO()
    write_message(frame, ApiError(kind, message).to_header())
    try:
        conn.setblocking(False)
        conn.send(frame.getvalue())  # a fresh socket's buffer takes a small message whole
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    if lingering is None or not lingering.add(conn):
        conn.close()


class LingeringClose:
    """Refused connections, answered, kept open a moment while their request drains:
    closed at once, the client's write of its request fails (EPIPE) or, over TCP, the
    reset loses the answer before the client reads it. One thread polls them all; each
    is closed at the client's hang-up or after ``linger_s``, and past ``most`` at once
    they are closed at once."""

    def __init__(self, linger_s: float = 2.0, most: int = 64) -> None:
        self._linger = linger_s
        self._most = most
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, conn: socket.socket) -> bool:
        """Close ``conn`` soon; False when the caller must close it now."""
        with self._lock:
            if len(self._deadlines) >= self._most or not self._running():
                return False
            self._deadlines[conn] = time.monotonic() + self._linger
            return True

    def _running(self) -> bool:
        if self._thread is None or not self._thread.is_alive():
            try:
                self._thread = threading.Thread(target=self._run, daemon=True, name="linger")
                self._thread.start()
            except RuntimeError:  # no thread: refused connections close at once
                self._thread = None
                return False
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                conns = list(self._deadlines)
            if not conns:
                time.sleep(0.1)
                continue
            poller = select.poll()
            for conn in conns:
                poller.register(conn, select.POLLIN)
            ready = {fd for fd, _ in poller.poll(100)}
            now = time.monotonic()
            for conn in conns:
                if conn.fileno() in ready and _drained(conn) or now > self._deadlines[conn]:
                    with self._lock:
                        del self._deadlines[conn]
                    conn.close()


def _drained(conn: socket.socket) -> bool:
    """Read and drop what the client sent; True at its hang-up (or an error)."""
    try:
        return not conn.recv(1 << 16)
    except BlockingIOError:
        return False
    except OSError:
        return True


def _framing_error(exc: ProtocolError) -> ApiError:
    if isinstance(exc, PayloadTooLarge):
        return ApiError(TOO_LARGE, f"request refused: {exc}. Send less data per call, or raise "
                        "COLDSNAP_MAX_PAYLOAD_BYTES on the server")
    return ApiError(BAD_REQUEST, f"malformed request: {exc}. Requests are framed messages "
                    "(coldsnap/wire/framing.py); use coldsnap's client")


def _try_send(wfile: BinaryIO, header: dict[str, Any], blob: bytes | None = None) -> bool:
    try:
        write_message(wfile, header, blob)
        return True
    except OSError:
        return False
