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
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from coldsnap.settings import EMBEDDED_ENV, Settings
from coldsnap.wire import ops, serialization
from coldsnap.wire.container import in_container
from coldsnap.wire.errors import (
    CLOSING_KINDS,
    InvalidError,
    ServerUnavailable,
    error_from,
)
from coldsnap.wire.exits import EXIT_ALREADY_RUNNING
from coldsnap.wire.framing import ChannelClosed, ProtocolError, read_message, write_message
from coldsnap.wire.token import read_token

SERVER_START_TIMEOUT_S = 60.0
NOT_THE_RUNTIME_MESSAGE = (
    "in a coldsnap container only the runtime's own process can call other functions "
    "(.remote(), .spawn(), .map()): this is another process (a subprocess?). Make the call "
    "from the function itself")
NOT_SERVING_MESSAGE = (
    "calls to other functions (.remote(), .spawn(), .map()) are possible from inside a call, "
    "not from @enter, @build or @exit hooks: the server answers a container's requests "
    "while it runs a call (and the snapshot phase has no network). Make the call in a "
    "method or function")


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

    @classmethod
    def default(cls) -> Client:
        """The process-wide client; starts an embedded server when none runs.

        Inside a container the server's socket is out of reach: requests go over
        the runtime's control pipe instead (``ContainerClient``).
        """
        if in_container():
            return ContainerClient.default()
        with cls._default_lock:
            if cls._default is None:
                client = cls(Settings.from_env())
                client.ensure_server()
                cls._default = client
            return cls._default

    # transport

    def _connect(self) -> socket.socket:
        if self.settings.tcp:
            try:
                address = self.settings.tcp_address()
            except ValueError as exc:
                raise InvalidError(f"{exc}. Fix COLDSNAP_TCP, or unset it to use the server "
                                   f"on this host ({self.settings.socket_path})") from None
            return socket.create_connection(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.settings.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def _token_value(self) -> str:
        if self._token is None:
            self._token = read_token(self.settings.token_path)
        return self._token

    def request(self, op: str, blob: bytes | None = None, **fields: Any
                ) -> tuple[dict[str, Any], bytes | None]:
        """Send one request; returns the reply, or raises what a failed reply stands for."""
        header, reply_blob = self._exchange({ops.OP: op, **fields}, blob)
        if self.echo_logs:
            for line in header.get("logs") or ():
                print(line, file=sys.stderr)
        if not header.get("ok"):
            raise error_from(header, reply_blob)
        return header, reply_blob

    def _exchange(self, header: dict[str, Any], blob: bytes | None
                  ) -> tuple[dict[str, Any], bytes | None]:
        sock = self._take_socket()
        try:
            header = {**header, ops.TOKEN: self._token_value()}
        except PermissionError:
            sock.close()
            raise
        rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
        try:
            try:
                write_message(wfile, header, blob)
            except OSError:
                pass  # the server may have refused early (too large); its answer says why
            reply = read_message(rfile)
        except (ChannelClosed, ProtocolError, OSError) as exc:
            sock.close()
            raise ServerUnavailable(self._lost_message(header[ops.OP], exc)) from None
        finally:
            rfile.close()
            wfile.close()
        if reply[0].get("ok") or reply[0].get("error", {}).get("kind") not in CLOSING_KINDS:
            with self._lock:
                self._idle.append(sock)
        else:
            sock.close()  # the server hangs up after these
        return reply

    def _take_socket(self) -> socket.socket:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._connect()
        except OSError as exc:
            raise ServerUnavailable(self._unreachable_message(exc)) from None

    def _where(self) -> str:
        return f"tcp {self.settings.tcp}" if self.settings.tcp else str(self.settings.socket_path)

    def _unreachable_message(self, exc: OSError) -> str:
        return (f"no coldsnap server answers on {self._where()} ({exc.strerror or exc}). "
                "Start one with `coldsnap serve`, or check COLDSNAP_STATE_DIR")

    def _lost_message(self, op: str, exc: Exception) -> str:
        log = self.settings.state_dir / "server.log"
        return (f"the coldsnap server on {self._where()} closed the connection during "
                f"{op!r} ({exc}); did it stop? Its log may say why: {log}")

    def close(self) -> None:
        with self._lock:
            while self._idle:
                self._idle.pop().close()

    # the embedded server

    def ping(self) -> dict[str, Any]:
        return self.request(ops.PING)[0]

    def ensure_server(self) -> None:
        """Ping the server; start one in the background if nothing listens, or if the
        one a client started there runs other coldsnap code than ours."""
        try:
            reply: dict[str, Any] | None = self.ping()
        except ServerUnavailable:
            if self.settings.tcp:
                raise  # a remote server is not ours to start
            reply = None
        if reply is not None:
            if not self._runs_other_code(reply):
                return
            self._stop_server(reply)  # raises if it does not go
        pid = self._spawn_server()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        exited: int | None = None
        while time.monotonic() < deadline:
            try:
                warning = self.ping().get("warning")
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
        raise ServerUnavailable(self._start_failure(exited))

    def _runs_other_code(self, ping: dict[str, Any]) -> bool:
        """True for a server that runs other coldsnap code (an update, another checkout);
        one a client started in the background is replaced, one started by hand kept."""
        from coldsnap.identity import coldsnap_fingerprint

        if ping.get("code") in (None, coldsnap_fingerprint()):
            return False
        if not ping.get("embedded") or ping.get("busy"):
            why = "it is busy" if ping.get("embedded") else "it was started by hand"
            print(f"coldsnap: warning: the server (pid {ping.get('pid')}) runs other coldsnap "
                  f"code than this client and is kept ({why}); restart it if calls fail",
                  file=sys.stderr)
            return False
        return True

    def _stop_server(self, ping: dict[str, Any]) -> None:
        print(f"coldsnap: restarting the background server (pid {ping.get('pid')}): it runs "
              "other coldsnap code than this client", file=sys.stderr)
        pid = int(ping.get("pid", 0))
        self.request(ops.SERVER_STOP)
        self.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:  # it drains its containers, then exits
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):  # gone (the pid reused: not ours)
                return
            time.sleep(0.1)
        raise ServerUnavailable(f"the background server (pid {ping.get('pid')}) "
                                "did not stop; stop it by hand (kill PID) and try again")

    def _spawn_server(self) -> int:
        self.settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = str(self.settings.state_dir / "server.log")
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        argv = [sys.executable, "-m", "coldsnap.cli.main", "serve"]
        env = {**os.environ, EMBEDDED_ENV: "1"}
        return os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)

    def _start_failure(self, exited: int | None) -> str:
        log = self.settings.state_dir / "server.log"
        try:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            tail = "(no log)"
        status = "did not answer in time" if exited is None else f"exited with status {exited}"
        return (f"started a coldsnap server in the background but it {status}. "
                f"Last lines of {log}:\n{tail}")

    # the API

    def call(self, app: str, tag: str, method: str | None, args: bytes,
             timeout: float | None = None) -> bytes:
        """Run one call and return its result blob; raises the remote exception."""
        _, blob = self.request(ops.CALL, args, app=app, tag=tag, method=method, timeout=timeout)
        return blob if blob is not None else serialization.dumps_result(None)

    def spawn(self, app: str, tag: str, method: str | None, args: bytes) -> str:
        return str(self.request(ops.SPAWN, args, app=app, tag=tag, method=method)[0]["call_id"])

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
        sock = self._take_socket()
        try:
            with sock.makefile("rb") as rfile, sock.makefile("wb") as wfile:
                write_message(wfile, {ops.OP: ops.DEPLOY, ops.TOKEN: self._token_value(),
                                      "progress": True, **fields}, source)
                while True:
                    header, blob = read_message(rfile)
                    if "progress" not in header:
                        break
                    progress(header["progress"])
        except (ChannelClosed, OSError) as exc:
            raise ServerUnavailable(self._lost_message(ops.DEPLOY, exc)) from None
        finally:
            sock.close()
        if not header.get("ok"):
            raise error_from(header, blob)
        return header

    def drain(self, app: str, wait: float = 60.0) -> dict[str, Any]:
        """Stop an app's containers; the next call cold-boots."""
        return self.request(ops.APP_DRAIN, app=app, wait=wait)[0]

    def stream(self, op: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """Replies of a streaming op (``logs`` with follow) until the caller stops."""
        sock = self._take_socket()
        try:
            with sock.makefile("rb") as rfile, sock.makefile("wb") as wfile:
                write_message(wfile, {ops.OP: op, ops.TOKEN: self._token_value(), **fields})
                while True:
                    header, blob = read_message(rfile)
                    if not header.get("ok"):
                        raise error_from(header, blob)
                    yield header
        except (ChannelClosed, OSError) as exc:
            raise ServerUnavailable(self._lost_message(op, exc)) from None
        finally:
            sock.close()


class RuntimeChannel(Protocol):
    """What a ContainerClient needs of the runtime's control channel (_runtime/channel.py)."""

    serving: bool  # the runtime is running a call: the server answers requests now
    deadline: float | None  # when the running call times out (time.monotonic())
    max_payload: int | None  # the server's payload limit

    def request(self, header: dict[str, Any], blob: bytes | None
                ) -> tuple[dict[str, Any], bytes | None]: ...


class ContainerClient(Client):
    """A container's way to the server: API requests over the runtime's control pipe.

    The server answers the ops a function needs to call others (ping, call,
    spawn, get: ``CONTAINER_OPS`` in server/api.py) while the container runs a
    call; the requests carry no token (the pipe is the container's own).
    """

    _current: ContainerClient | None = None
    # The called containers' lines are in the app's log already, under their own ids.
    echo_logs = False

    def __init__(self, channel: RuntimeChannel) -> None:
        super().__init__(Settings())
        self._channel = channel

    @classmethod
    def default(cls) -> ContainerClient:
        # Only inside a container, where the runtime has already loaded it.
        from coldsnap._runtime.channel import current

        runtime_channel = current()
        if runtime_channel is None:  # not the runtime's process (a subprocess?)
            raise InvalidError(NOT_THE_RUNTIME_MESSAGE)
        with cls._default_lock:
            if cls._current is None or cls._current._channel is not runtime_channel:
                cls._current = cls(runtime_channel)
            return cls._current

    def _exchange(self, header: dict[str, Any], blob: bytes | None
                  ) -> tuple[dict[str, Any], bytes | None]:
        if not self._channel.serving:
            raise InvalidError(NOT_SERVING_MESSAGE)
        deadline = self._channel.deadline
        if deadline is not None and header.get(ops.OP) in (ops.CALL, ops.GET):
            left = max(0.001, deadline - time.monotonic())
            given = header.get("timeout")
            header = {**header, "timeout": left if given is None else min(given, left)}
        limit = self._channel.max_payload
        if blob is not None and limit is not None and len(blob) > limit:
            raise InvalidError(
                f"the arguments of this {header.get(ops.OP)} are {len(blob)} bytes pickled, over "
                f"the server's limit of {limit} bytes (COLDSNAP_MAX_PAYLOAD_BYTES); pass a "
                "path to a file or volume instead, or raise the limit")
        try:
            reply: tuple[dict[str, Any], bytes | None] = self._channel.request(header, blob)
        except (ChannelClosed, OSError) as exc:
            raise ServerUnavailable(f"the coldsnap server went away during "
                                    f"{header.get(ops.OP)!r} ({exc})") from None
        return reply

    def _take_socket(self) -> socket.socket:  # deploy's progress stream, say
        raise InvalidError("from inside a container only calls to other functions "
                           "(.remote(), .spawn(), .map(), lookups) reach the server")
