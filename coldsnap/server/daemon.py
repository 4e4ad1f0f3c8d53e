"""``coldsnap serve``: startup, the accept loops, shutdown.

startup (lock the state dir, become a subreaper, token, database, engine,
sockets) -> serve connections until SIGTERM/SIGINT -> shutdown (drain
containers, close sockets, unlock).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from coldsnap.engine import make_engine
from coldsnap.server.api import Api, answer, answer_container
from coldsnap.server.errors import ApiError
from coldsnap.server.platform import Platform
from coldsnap.server.process import StateLock, ZombieReaper, become_subreaper
from coldsnap.server.server_log import configure as configure_logging
from coldsnap.server.state import StateDB
from coldsnap.settings import Settings
from coldsnap.wire import ops
from coldsnap.wire.errors import BAD_REQUEST, TOO_LARGE, UNAUTHORIZED
from coldsnap.wire.framing import (
    ChannelClosed,
    PayloadTooLarge,
    ProtocolError,
    read_message,
    write_message,
)
from coldsnap.wire.token import ensure_token, token_matches

logger = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Run the server in the foreground until SIGTERM or SIGINT.

    ``settings.log_level`` and ``settings.tcp`` must be valid
    (``Settings.log_level_name``, ``Settings.tcp_address``): the CLI checks them
    and reports a bad value before anything starts.
    """
    configure_logging(settings.log_level_name())
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.state_dir, 0o700)  # containers and other users stay out
    lock = StateLock(settings.state_dir)
    lock.acquire()
    try:
        become_subreaper()
        reaper = ZombieReaper()
        reaper.start()
        server = Server(settings)
        try:
            server.run()
        finally:
            reaper.stop()
    finally:
        lock.release()


class Server:
    """One running server: its token, database, engine and platform, the listening
    sockets and their accept threads, and the event that stops it all (``run``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = ensure_token(settings.token_path)
        self.db = StateDB(settings.db_path)
        self.engine = make_engine(settings)
        self.warning = _engine_warning(settings, self.engine.name)
        self.platform = Platform(settings, self.engine, self.db)
        self.stopping = threading.Event()
        self.api = Api(self.platform, self.warning, stop=self.stopping.set)
        self.platform.container_requests = lambda header, blob: answer_container(
            self.api, header, blob)
        self.listeners: list[socket.socket] = []

    def run(self) -> None:
        # Everything after the engine is built is in the `try`: a failure to start (a
        # port in use) still unmounts, unlinks and closes what started before it.
        try:
            self.platform.start()
            self._listen()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
            where = self.settings.socket_path.as_posix() + (
                f" and tcp {self.settings.tcp}" if self.settings.tcp else "")
            # Tests and people look for "listening on" in server.log: keep those words.
            logger.info("coldsnap server %d listening on %s (engine %s, state %s)",
                        os.getpid(), where, self.engine.name, self.settings.state_dir)
            if self.warning:
                logger.warning("%s", self.warning)
            # Timed: the kernel may hand SIGTERM to another thread (seen after SIGSTOP and
            # SIGCONT), and Python runs handlers only in the main thread, between waits.
            while not self.stopping.wait(1.0):
                pass
        finally:
            logger.info("coldsnap server stopping: draining containers")
            for listener in self.listeners:
                listener.close()
            self.settings.socket_path.unlink(missing_ok=True)
            self.platform.shutdown()
            self.engine.close()
            self.db.close()
            logger.info("coldsnap server stopped")

    def _listen(self) -> None:
        self.listeners.append(_unix_listener(self.settings.socket_path))
        if self.settings.tcp:
            self.listeners.append(_tcp_listener(self.settings))
        for listener in self.listeners:
            threading.Thread(target=self._accept, args=(listener,), daemon=True,
                             name="accept").start()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed at shutdown
            threading.Thread(target=self._connection, args=(conn,), daemon=True,
                             name="conn").start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as rfile, conn.makefile("wb") as wfile:
            while True:
                try:
                    header, blob = read_message(rfile, max_blob=self.settings.max_payload_bytes)
                except (ChannelClosed, OSError):
                    return
                except ProtocolError as exc:
                    # The stream can't be resynchronised: answer, then hang up.
                    _try_send(wfile, _framing_error(exc, self.settings).to_header())
                    return
                if not self._answer(header, blob, wfile):
                    return

    def _answer(self, header: dict[str, Any], blob: bytes | None, wfile: Any) -> bool:
        """Handle one request; False when the connection must close."""
        if not token_matches(self.token, header.pop(ops.TOKEN, None)):
            error = ApiError(UNAUTHORIZED, "request refused: missing or wrong token. Clients "
                             f"read it from {self.settings.token_path} (mode 0600, readable by "
                             "the server's user only)")
            _try_send(wfile, error.to_header())
            return False
        reply = answer(self.api, header, blob, wfile)
        if reply is None:
            return False  # a streaming client hung up
        return _try_send(wfile, reply[0], reply[1])


def _engine_warning(settings: Settings, engine: str) -> str | None:
    """Why ``engine=auto`` fell back to ``none``, loudly: containers are not isolated."""
    if settings.engine != "auto" or engine != "none":
        return None
    try:
        from coldsnap.engine.doctor import run_checks

        failing = [f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "")
                   for c in run_checks(settings) if not c.ok and c.needed]
    except Exception as exc:  # the doctor itself failing must not stop the server
        failing = [f"the checks could not run: {exc!r}"]
    return ("WARNING: engine=auto picked 'none' because `coldsnap doctor` fails ("
            + "; ".join(failing or ["criu check"]) + "). Containers are NOT isolated: they "
            "run as plain processes with the server's user, files and network, and boot "
            "without memory snapshots. Fix the checks, or set COLDSNAP_ENGINE=none to "
            "choose this on purpose")


def _framing_error(exc: ProtocolError, settings: Settings) -> ApiError:
    if isinstance(exc, PayloadTooLarge):
        return ApiError(TOO_LARGE, f"request refused: {exc}. Send less data per call, or raise "
                        "COLDSNAP_MAX_PAYLOAD_BYTES on the server")
    return ApiError(BAD_REQUEST, f"malformed request: {exc}. Requests are framed messages "
                    "(coldsnap/wire/framing.py); use coldsnap's client")


def _try_send(wfile: Any, header: dict[str, Any], blob: bytes | None = None) -> bool:
    try:
        write_message(wfile, header, blob)
        return True
    except OSError:
        return False


def _unix_listener(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)  # we hold the state lock, so any socket file here is stale
    if len(os.fsencode(path)) > 107:
        raise SystemExit(f"the socket path {path} is longer than the 107 bytes a unix socket "
                         "allows; set COLDSNAP_STATE_DIR to a shorter directory")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(1024)
    return listener


def _tcp_listener(settings: Settings) -> socket.socket:
    try:
        return socket.create_server(settings.tcp_address(), backlog=1024)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SystemExit(f"can't listen on tcp {settings.tcp} (COLDSNAP_TCP): {why}; stop "
                         "what uses it or pick another port") from None
