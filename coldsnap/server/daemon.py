"""``coldsnap serve``: startup, the accept loops, shutdown.

startup (lock the state dir, become a subreaper, raise the open-file limit,
token, database, engine, sockets) -> serve connections (``connections.py``) until
SIGTERM/SIGINT -> shutdown (drain containers, close sockets, unlock).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import socket
import threading
from pathlib import Path

from coldsnap.server.api import Api, answer, answer_container
from coldsnap.server.connections import Connections, connection_cap
from coldsnap.server.dashboard import Dashboard, DashboardAuth
from coldsnap.server.dashboard.standalone import DashboardBindError, DashboardServer
from coldsnap.server.fleet import make_fleet
from coldsnap.server.fleet.takeover import settle, wire_pools
from coldsnap.server.gateway import Gateway, GatewayBindError
from coldsnap.server.platform import Platform
from coldsnap.server.process import (
    StateLock,
    ZombieReaper,
    become_subreaper,
    raise_open_file_limit,
)
from coldsnap.server.server_log import configure as configure_logging
from coldsnap.server.state import StateDB
from coldsnap.settings import Settings
from coldsnap.wire.token import ensure_token

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
        open_file_limit = raise_open_file_limit()
        reaper = ZombieReaper()
        reaper.start()
        server = Server(settings, open_file_limit)
        try:
            server.run()
        finally:
            reaper.stop()
    finally:
        lock.release()


class Server:
    """One running server: its token, database, engine and platform, the listening
    sockets and their accept threads, and the event that stops it all (``run``)."""

    def __init__(self, settings: Settings, open_file_limit: int | None = None) -> None:
        if open_file_limit is None:
            open_file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.settings = settings
        self.token = ensure_token(settings.token_path)
        self.db = StateDB(settings.db_path)
        self.engine = make_fleet(settings)  # this host alone, or a Ray cluster's nodes
        self.warning = _engine_warning(settings, self.engine.name)
        self.platform = Platform(settings, self.engine, self.db)
        wire_pools(self.platform.pool_context, self.engine)  # a restart's containers
        self.stopping = threading.Event()
        self.dashboard_auth = DashboardAuth(self.token)
        self.api = Api(self.platform, self.warning, stop=self.stopping.set,
                       dashboard=self.dashboard_auth)
        self.platform.container_requests = lambda header, blob: answer_container(
            self.api, header, blob)
        self.api.hosts = self.engine.hosts
        self.listeners: list[socket.socket] = []
        self.gateway: Gateway | None = None
        self.own_dashboard: DashboardServer | None = None  # when the gateway is off
        self.connections = Connections(
            settings, self.token, lambda header, blob, wfile: answer(self.api, header, blob, wfile),
            self.stopping, connection_cap(settings, open_file_limit))

    def run(self) -> None:
        # Everything after the engine is built is in the `try`: a failure to start (a
        # port in use) still unmounts, unlinks and closes what started before it.
        try:
            self.platform.start()
            settle(self.engine, self.platform.deploys)  # adopt or stop what a restart found
            self._start_gateway()
            self._listen()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
            where = self.settings.socket_path.as_posix() + (
                f" and tcp {self.settings.tcp}" if self.settings.tcp else "") + (
                f", web endpoints on {self.gateway.base_url}" if self.gateway else "")
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
            if self.gateway is not None:
                self.gateway.stop()
            if self.own_dashboard is not None:
                self.own_dashboard.stop()
            self.settings.socket_path.unlink(missing_ok=True)
            self.platform.shutdown()
            self.engine.close()
            self.db.close()
            logger.info("coldsnap server stopped")

    def _start_gateway(self) -> None:
        if self.settings.http_address() is None:  # COLDSNAP_HTTP=off
            self._start_own_dashboard()
            return
        self.gateway = Gateway(self.settings, self.platform.deploys.web_endpoint,
                               self.platform.tokens.check, self.platform.metrics, self.token,
                               Dashboard(self.platform, self.dashboard_auth))
        try:
            self.gateway.start()
        except GatewayBindError as exc:
            raise SystemExit(str(exc)) from None
        self.platform.deploys.web_base = self.gateway.base_url
        self.dashboard_auth.base_url = self.gateway.base_url

    def _start_own_dashboard(self) -> None:
        """The dashboard on COLDSNAP_DASHBOARD, since no gateway serves it."""
        address = self.settings.dashboard_address()
        if address is None:  # COLDSNAP_DASHBOARD=off
            return
        own = DashboardServer(Dashboard(self.platform, self.dashboard_auth), address,
                              self.settings.dashboard)
        try:
            own.start()
        except DashboardBindError as exc:
            raise SystemExit(str(exc)) from None
        self.own_dashboard = own
        self.dashboard_auth.base_url = own.base_url
        logger.info("dashboard on %s/dashboard/ (the HTTP gateway is off)", own.base_url)

    def _listen(self) -> None:
        self.listeners.append(_unix_listener(self.settings.socket_path))
        if self.settings.tcp:
            self.listeners.append(_tcp_listener(self.settings))
        for listener in self.listeners:
            threading.Thread(target=self.connections.accept_forever, args=(listener,),
                             daemon=True, name="accept").start()


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
