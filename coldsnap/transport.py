"""The client's socket to the server: connect, send a request and wait for its reply,
each within a time limit, so that a server that died or froze never hangs a client.

It also tells apart the ways a request fails, because what the client may do next
depends on it: ``NoServer`` (nothing listens: a background server may be started),
``NotSent`` (the request never reached the server: safe to send again) and a plain
``ServerUnavailable`` (sent, then the answer was lost or late: a ``call`` may have
run, so it is never sent again). Example::

    sock = connect(settings)
    header, blob = exchange(sock, settings, {"op": "ping", "token": t}, None, Patience.fixed(30))
"""

from __future__ import annotations

import dataclasses
import errno
import select
import socket
import time
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from coldsnap.settings import Settings
from coldsnap.wire.errors import InvalidError, ServerUnavailable
from coldsnap.wire.framing import (
    ChannelClosed,
    Message,
    ProtocolError,
    read_message,
    write_message,
)

# Connecting fails with these when no server listens on the address (no socket file, a
# socket file nobody listens on, a closed TCP port).
_NOBODY_LISTENS = frozenset({errno.ENOENT, errno.ECONNREFUSED})


class NotSent(ServerUnavailable):
    """The request never reached a server: sending it again can't run anything twice."""


class NoServer(NotSent):
    """Nothing listens on the server's address."""


@dataclasses.dataclass(frozen=True)
class Patience:
    """How long to wait for a reply once the request is sent.

    ``deadline`` (``time.monotonic()``) ends the wait; with ``alive`` the wait goes on
    past each ``step`` seconds of silence as long as ``alive()`` returns (it raises
    when the server does not answer a ping: it died or froze).
    """

    step: float
    deadline: float | None
    alive: Callable[[], None] | None = None
    why: str = ""  # what set the deadline, for the message
    limit_s: float = 0.0  # the wait the deadline stands for, for the message

    @classmethod
    def fixed(cls, seconds: float) -> Patience:
        return cls(seconds, time.monotonic() + seconds, None, "COLDSNAP_CLIENT_TIMEOUT_S",
                   seconds)


def where(settings: Settings) -> str:
    return f"tcp {settings.tcp}" if settings.tcp else str(settings.socket_path)


def connect(settings: Settings) -> socket.socket:
    """A socket connected to the server, within ``client_timeout_s``."""
    timeout = settings.client_timeout_s
    try:
        if settings.tcp:
            try:
                address = settings.tcp_address()
            except ValueError as exc:
                raise InvalidError(f"{exc}. Fix COLDSNAP_TCP, or unset it to use the server "
                                   f"on this host ({settings.socket_path})") from None
            return socket.create_connection(address, timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(settings.socket_path))
        except OSError:
            sock.close()
            raise
        return sock
    except OSError as exc:
        if exc.errno in _NOBODY_LISTENS:
            raise NoServer(f"no coldsnap server answers on {where(settings)} "
                           f"({exc.strerror or exc}). Start one with `coldsnap serve`, or "
                           "check COLDSNAP_STATE_DIR") from None
        raise NotSent(f"could not connect to the coldsnap server on {where(settings)} within "
                      f"{timeout:g} s (COLDSNAP_CLIENT_TIMEOUT_S): {exc.strerror or exc}; "
                      f"is it overloaded? Its log: {log_path(settings)}") from None


def is_stale(sock: socket.socket) -> bool:
    """True for an idle socket the server has closed (it died, or restarted): the server
    never speaks first, so anything to read on an idle socket is its end of file."""
    try:
        readable, _, broken = select.select([sock], [], [sock], 0)
    except (OSError, ValueError):
        return True
    return bool(readable or broken)


def exchange(sock: socket.socket, settings: Settings, header: dict[str, Any],
             blob: bytes | None, patience: Patience) -> Message:
    """Send one request and read its reply; raises ``NotSent`` or ``ServerUnavailable``."""
    op = header.get("op")
    sock.settimeout(settings.client_timeout_s)
    # Unbuffered reads: a buffer could hold the next reply of a stream while select()
    # waits on the socket for it (read_message reads exactly one message's bytes).
    with sock.makefile("rb", buffering=0) as raw, sock.makefile("wb") as wfile:
        rfile = cast(BinaryIO, raw)
        try:
            write_message(wfile, header, blob)
        except OSError as exc:
            # The server may have refused early (too large): its answer says why. Else
            # it closed this socket before reading the request: nothing ran.
            try:
                return read_message(rfile)
            except (ChannelClosed, ProtocolError, OSError):
                raise NotSent(lost_message(settings, op, exc, ran=False)) from None
        return await_reply(sock, rfile, settings, op, patience)


def await_reply(sock: socket.socket, rfile: Any, settings: Settings, op: Any,
                patience: Patience) -> Message:
    """The next message on ``sock``, waiting as ``patience`` says."""
    while True:
        left = None if patience.deadline is None else patience.deadline - time.monotonic()
        step = patience.step if left is None else max(0.0, min(patience.step, left))
        if _readable(sock, step):
            break
        if left is not None and left <= step:
            raise ServerUnavailable(_silent_message(settings, op, patience.limit_s,
                                                    patience.why))
        if patience.alive is not None:
            patience.alive()
    try:  # the reply has begun: the rest follows at once from a live server
        return read_message(rfile)
    except ConnectionResetError as exc:
        # A socket closed with unread data resets its peer: the server died (or hung
        # up) before reading the whole request, so it did not run it.
        raise NotSent(lost_message(settings, op, exc, ran=False)) from None
    except (ChannelClosed, ProtocolError, OSError) as exc:
        raise ServerUnavailable(lost_message(settings, op, exc)) from None


def _readable(sock: socket.socket, timeout: float) -> bool:
    try:
        readable, _, broken = select.select([sock], [], [sock], timeout)
    except InterruptedError:
        return False
    return bool(readable or broken)


def log_path(settings: Settings) -> str:
    """Where the server's log is: a background server writes ``server.log``; one started
    by hand (`coldsnap serve`) writes to its own terminal or service manager."""
    path = settings.state_dir / "server.log"
    if path.exists():
        return str(path)
    return "the output of the `coldsnap serve` that started it"


def lost_message(settings: Settings, op: Any, exc: BaseException, ran: bool = True) -> str:
    maybe_ran = (" The call may have run; it is not sent again."
                 if ran and op in ("call", "spawn") else "")
    return (f"the coldsnap server on {where(settings)} closed the connection during {op!r}; "
            f"did it stop? Its log may say why: {log_path(settings)}.{maybe_ran}")


def _silent_message(settings: Settings, op: Any, limit: float, why: str) -> str:
    return (f"the coldsnap server on {where(settings)} did not answer {op!r} within "
            f"{limit:g} s ({why}); is it overloaded, or stopped (SIGSTOP)? Its log: "
            f"{log_path(settings)}")
