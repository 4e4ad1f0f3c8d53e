"""The client side of the server's socket API.

``Client.default()`` is what the SDK's handles use: it reads the settings
from the environment and, when no server answers on the socket, starts one in
the background (a detached ``coldsnap serve`` logging to
``<state_dir>/server.log``). Example::

    client = Client.default()
    blob = client.call("my-app", "square", None, serialization.dumps_args((3,), {}), None)
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from coldsnap import app_output, background_server, transport
from coldsnap.settings import Settings
from coldsnap.transport import NoServer, NotSent, Patience
from coldsnap.wire import ops, serialization
from coldsnap.wire.container import in_container
from coldsnap.wire.errors import (
    CLOSING_KINDS,
    ServerUnavailable,
    error_from,
)
from coldsnap.wire.exits import EXIT_ALREADY_RUNNING
from coldsnap.wire.framing import write_message
from coldsnap.wire.sandbox import SANDBOX_LONG_OPS
from coldsnap.wire.token import read_token

SERVER_START_TIMEOUT_S = 60.0
# Ops whose reply may take long (a call, an image build, draining containers): their
# wait goes on while the server answers pings. Others answer within client_timeout_s.
LONG_OPS = frozenset({ops.CALL, ops.GET, ops.DEPLOY, ops.APP_DRAIN, ops.APP_STOP,
                      ops.SNAPSHOT_RM, ops.SNAPSHOTS_GC}) | SANDBOX_LONG_OPS
# Sent again on a fresh socket when a pooled one turns out dead after sending: they
# change nothing (a `call` or `spawn` that may have reached the server is never re-sent).
REPEATABLE_OPS = frozenset({ops.PING, ops.GET, ops.LOOKUP, ops.APPS_LS, ops.APP_STATS,
                            ops.LOGS, ops.SNAPSHOTS_LS, ops.SNAPSHOT_INSPECT})



class Client:
    """A pool of sockets to one server; safe to share between threads."""

    _default: Client | None = None
    _default_lock = threading.Lock()
    echo_logs = True  # print a reply's log lines (the containers' output) to stderr

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._token: str | None = None
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        # Set when this client started the server, or found one a client started in the
        # background: if it dies, the next request starts another.
        self.restarts_server = False
        self._server_pid: int | None = None  # the background server this client started
        self._restart_lock = threading.Lock()

    @classmethod
    def default(cls) -> Client:
        """The process-wide client; starts an embedded server when none runs.

        Inside a container the server's socket is out of reach: requests go over
        the runtime's control pipe instead (``ContainerClient``).
        """
        if in_container():
            from coldsnap.container_client import ContainerClient

            return ContainerClient.default()
        with cls._default_lock:
            if cls._default is None:
                client = cls(Settings.from_env())
                client.ensure_server()
                cls._default = client
            return cls._default

    # transport

    def _token_value(self) -> str:
        if self._token is None:
            self._token = read_token(self.settings.token_path)
        return self._token

    def request(self, op: str, blob: bytes | None = None, **fields: Any
                ) -> tuple[dict[str, Any], bytes | None]:
        """Send one request; returns the reply, or raises what a failed reply stands for."""
        try:
            reply = self._exchange({ops.OP: op, **fields}, blob)
        except ServerUnavailable as exc:
            raise _public(exc) from None
        return self._checked(reply)

    def _checked(self, reply: tuple[dict[str, Any], bytes | None]
                 ) -> tuple[dict[str, Any], bytes | None]:
        header, reply_blob = reply
        if self.echo_logs:
            app_output.ECHO.show(header.get("logs") or (), app_output.REPLY)
        if not header.get("ok"):
            raise error_from(header, reply_blob)
        return header, reply_blob

    def _exchange(self, header: dict[str, Any], blob: bytes | None, restart: bool = True
                  ) -> tuple[dict[str, Any], bytes | None]:
        op = header[ops.OP]
        fresh_tries = 0
        while True:
            sock, pooled = self._take_socket(restart)
            fresh_tries += not pooled
            try:
                header = {**header, ops.TOKEN: self._token_value()}
                reply = transport.exchange(sock, self.settings, header, blob,
                                           self._patience(header))
            except (ServerUnavailable, PermissionError) as exc:
                sock.close()
                if isinstance(exc, PermissionError):
                    raise
                # A pooled socket may have died with a server since it was last used,
                # and a dying server may still accept a connection it never reads: try
                # again while nothing ran (a new connection to a dead server is refused).
                if isinstance(exc, NotSent) and fresh_tries < 3:
                    time.sleep(0.1 * fresh_tries)
                    continue
                if pooled and op in REPEATABLE_OPS:
                    continue
                raise
            break
        if reply[0].get("ok") or reply[0].get("error", {}).get("kind") not in CLOSING_KINDS:
            with self._lock:
                self._idle.append(sock)
        else:
            sock.close()  # the server hangs up after these
        return reply

    def _patience(self, header: dict[str, Any]) -> Patience:
        step = self.settings.client_timeout_s
        op = header[ops.OP]
        if op not in LONG_OPS:
            return Patience.fixed(step)
        given = header.get("timeout") if op in (ops.CALL, ops.GET) else None
        if given is None:
            return Patience(step, None, lambda: self._check_alive(op))
        return Patience(step, time.monotonic() + float(given) + step,
                        lambda: self._check_alive(op),
                        f"the {op}'s timeout of {float(given):g} s plus "
                        "COLDSNAP_CLIENT_TIMEOUT_S", float(given) + step)

    def _check_alive(self, op: str) -> None:
        """Ping on a socket of its own while a long request waits; raises if none comes."""
        try:
            sock = transport.connect(self.settings)
            try:
                transport.exchange(sock, self.settings, {ops.OP: ops.PING, ops.TOKEN:
                                   self._token_value()}, None,
                                   Patience.fixed(self.settings.client_timeout_s))
            finally:
                sock.close()
        except ServerUnavailable as exc:
            may_ran = "; the call may have run" if op == ops.CALL else ""
            raise ServerUnavailable(f"while waiting for the reply to {op!r}{may_ran}: "
                                    f"{exc}") from None

    def _take_socket(self, restart: bool = True) -> tuple[socket.socket, bool]:
        """An idle socket (True) or a new one (False)."""
        with self._lock:
            while self._idle:
                sock = self._idle.pop()
                if not transport.is_stale(sock):
                    return sock, True
                sock.close()
        try:
            return transport.connect(self.settings), False
        except NoServer:
            if not (restart and self.restarts_server):
                raise
        self._restart_server()
        return transport.connect(self.settings), False

    def _restart_server(self) -> None:
        with self._restart_lock:  # one thread starts it; the others find it started
            try:
                transport.connect(self.settings).close()
                return
            except NoServer:
                pass
            print(f"coldsnap: the background server on {self._where()} is gone; "
                  "starting a new one", file=sys.stderr)
            self.close()
            if self._server_pid is not None:  # ours: reap it (a zombie holds no lock)
                background_server.reap(self._server_pid)
            self.ensure_server()

    def _where(self) -> str:
        return transport.where(self.settings)

    def close(self) -> None:
        with self._lock:
            while self._idle:
                self._idle.pop().close()

    # the embedded server

    def ping(self) -> dict[str, Any]:
        return self.request(ops.PING)[0]

    def _ping_once(self) -> dict[str, Any]:
        """A ping that starts no server when none answers (``ensure_server``'s own)."""
        return self._checked(self._exchange({ops.OP: ops.PING}, None, restart=False))[0]

    def ensure_server(self) -> None:
        """Ping the server; start one in the background if nothing listens, or if the
        one a client started there runs other coldsnap code than ours.

        A server that does not answer in time (frozen, overloaded) is not replaced: it
        still holds the state dir, so the error says so instead.
        """
        try:
            reply: dict[str, Any] | None = self._ping_once()
        except NoServer:
            if self.settings.tcp:
                raise  # a remote server is not ours to start
            reply = None
        if reply is not None:
            self.restarts_server = bool(reply.get("embedded")) and not self.settings.tcp
            if not background_server.runs_other_code(reply):
                return
            self._stop_server(reply)  # raises if it does not go
        refusal = background_server.fleet_refusal(self.settings)
        if refusal is not None:
            raise ServerUnavailable(refusal)
        started = background_server.spawn(self.settings)
        pid = self._server_pid = started.pid
        self.restarts_server = True
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        exited: int | None = None
        while time.monotonic() < deadline:
            try:
                warning = self._ping_once().get("warning")
                if warning:  # e.g. engine=auto fell back to none: say so once, here
                    print(f"coldsnap: {warning}", file=sys.stderr)
                return
            except (ServerUnavailable, PermissionError):
                pass
            if exited is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    exited = os.waitstatus_to_exitcode(status)
                    if exited != EXIT_ALREADY_RUNNING:  # else another won the race: wait
                        break
            time.sleep(0.05)
        raise ServerUnavailable(background_server.start_failure(self.settings, started, exited))

    def stop_server(self) -> int | None:
        """Stop the server of these settings (its containers leave first) and wait for it
        to exit; its pid, or None when none answers (none is started)."""
        try:
            ping = self._ping_once()
        except NoServer:
            return None
        self._stop_and_wait(ping)
        return int(ping.get("pid", 0))

    def _stop_server(self, ping: dict[str, Any]) -> None:
        print(f"coldsnap: restarting the background server (pid {ping.get('pid')}): it runs "
              "other coldsnap code than this client", file=sys.stderr)
        self._stop_and_wait(ping)

    def _stop_and_wait(self, ping: dict[str, Any]) -> None:
        pid = int(ping.get("pid", 0))
        self.request(ops.SERVER_STOP)
        self.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:  # it drains its containers, then exits
            if _exited(pid):
                return
            time.sleep(0.1)
        raise ServerUnavailable(f"the background server (pid {ping.get('pid')}) "
                                "did not stop; stop it by hand (kill PID) and try again")

    # the API

    def call(self, app: str, tag: str, method: str | None, args: bytes,
             timeout: float | None = None, variant: dict[str, Any] | None = None) -> bytes:
        """Run one call and return its result blob; raises the remote exception.
        ``variant``: a class instance's parameters and option overrides (wire/variant.py)."""
        _, blob = self.request(ops.CALL, args, app=app, tag=tag, method=method, timeout=timeout,
                               **_variant_field(variant))
        return blob if blob is not None else serialization.dumps_result(None)

    def spawn(self, app: str, tag: str, method: str | None, args: bytes,
              variant: dict[str, Any] | None = None) -> str:
        return str(self.request(ops.SPAWN, args, app=app, tag=tag, method=method,
                                **_variant_field(variant))[0]["call_id"])

    def get(self, call_id: str, timeout: float | None = None) -> bytes:
        _, blob = self.request(ops.GET, call_id=call_id, timeout=timeout)
        return blob if blob is not None else serialization.dumps_result(None)

    def deploy(self, source: bytes, filename: str, name: str | None = None,
               ephemeral: bool = False, snapshots: bool = True,
               progress: Callable[[str], None] | None = None,
               app_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Deploy an app's source; ``progress`` gets the image build's lines as they come.

        ``app_dir``: the directory the app file is in; the modules the app imports
        from there go into its image (this host's server reads them).
        """
        fields: dict[str, Any] = {"filename": filename, "name": name, "ephemeral": ephemeral,
                                  "snapshots": snapshots}
        if not self.settings.tcp:  # paths mean something to a server on this host only
            # The app's relative paths (Image.add_local_file) resolve against our cwd.
            fields["cwd"] = os.getcwd()
            fields["app_dir"] = os.path.abspath(app_dir) if app_dir is not None else None
        if progress is None:
            return self.request(ops.DEPLOY, source, **fields)[0]
        replies = self._replies({ops.OP: ops.DEPLOY, "progress": True, **fields}, source)
        try:
            header, blob = next(replies)
            while "progress" in header:
                progress(header["progress"])
                header, blob = next(replies)
        finally:
            replies.close()
        if not header.get("ok"):
            raise error_from(header, blob)
        return header

    def drain(self, app: str, wait: float = 60.0) -> dict[str, Any]:
        """Stop an app's containers; the next call cold-boots."""
        return self.request(ops.APP_DRAIN, app=app, wait=wait)[0]

    def stream(self, op: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """Replies of a streaming op (``logs`` with follow) until the caller stops."""
        for header, blob in self._replies({ops.OP: op, **fields}, None):
            if not header.get("ok"):
                raise error_from(header, blob)
            yield header

    def _replies(self, request: dict[str, Any], blob: bytes | None
                 ) -> Generator[tuple[dict[str, Any], bytes | None], None, None]:
        """The replies to one request, each awaited as ``_patience`` says; the socket is
        closed after (the caller stops reading when it has what it wants)."""
        try:
            sock, _ = self._take_socket()
        except ServerUnavailable as exc:
            raise _public(exc) from None
        patience = self._patience(request)
        try:
            request = {**request, ops.TOKEN: self._token_value()}
            # Unbuffered, as transport.exchange's: the stream's replies are awaited one by one.
            with sock.makefile("rb", buffering=0) as rfile, sock.makefile("wb") as wfile:
                try:
                    write_message(wfile, request, blob)
                except OSError as exc:
                    raise ServerUnavailable(transport.lost_message(
                        self.settings, request[ops.OP], exc)) from None
                while True:
                    yield transport.await_reply(sock, rfile, self.settings, request[ops.OP],
                                                patience)
                    if patience.alive is None:  # each reply within the fixed time
                        patience = self._patience(request)
        finally:
            sock.close()


def _variant_field(variant: dict[str, Any] | None) -> dict[str, Any]:
    """Absent for the default variant: those requests stay as they were."""
    return {"variant": variant} if variant else {}


def _exited(pid: int) -> bool:
    """True once ``pid`` is gone, a zombie its parent has not reaped yet, or someone
    else's (the pid reused)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return True


def _public(exc: ServerUnavailable) -> ServerUnavailable:
    """The transport's finer kinds (NotSent, NoServer) stay inside the client: callers
    catch, and see, ``coldsnap.exception.ConnectionError``."""
    return ServerUnavailable(str(exc)) if type(exc) is not ServerUnavailable else exc
