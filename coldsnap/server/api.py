"""The socket API: one handler per ``op``, chosen by name from ``HANDLERS``.

A request is one framing message: a JSON header with ``op``, ``token`` and the
op's fields, and an optional blob (source or pickled arguments). A reply is
``{"ok": true, ...}`` or ``{"ok": false, "error": {"kind", "message"}}``, with a
blob for results and exceptions. ``logs`` with ``follow`` streams messages
until the client hangs up.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, BinaryIO

from coldsnap.identity import coldsnap_fingerprint, coldsnap_version
from coldsnap.server import call_ops
from coldsnap.server.calls import Call
from coldsnap.server.dashboard import DashboardAuth, dashboard_login
from coldsnap.server.errors import ApiError, Reply
from coldsnap.server.host_snapshots import on_hosts
from coldsnap.server.logs import LogLine
from coldsnap.server.objects_api import OBJECT_HANDLERS, VOLUME_CONTAINER_OPS
from coldsnap.server.platform import Platform
from coldsnap.server.pool import Pool
from coldsnap.server.sandbox_api import SANDBOX_HANDLERS
from coldsnap.server.variants import parse_variant
from coldsnap.settings import EMBEDDED_ENV
from coldsnap.wire import ops
from coldsnap.wire.errors import BAD_REQUEST, INTERNAL, NOT_FOUND, TIMEOUT
from coldsnap.wire.framing import write_message
from coldsnap.wire.sandbox import SANDBOX_OPS

logger = logging.getLogger(__name__)

# The longest a request may wait for a result: a week. Longer is a mistake (or 1e300,
# which no clock can wait for); nobody holds a socket open that long.
MAX_WAIT_S = ops.MAX_WAIT_S
MAX_COUNT = 1 << 31  # tail, keep: far past any real log or snapshot count


class ClientGone(Exception):
    """Writing to the client failed: it hung up. Nobody is left to answer."""


class Request:
    """One request: its header's fields (checked by ``field``), its blob, and the
    stream a handler writes further messages to (``send``; not for containers')."""

    def __init__(self, header: dict[str, Any], blob: bytes | None,
                 stream: BinaryIO | None) -> None:
        self.header = header
        self.blob = blob
        self.stream = stream  # for ops that answer with several messages (not containers')

    def field(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        value = self.header.get(name, default)
        if value is ...:
            raise ApiError(BAD_REQUEST, f"op {self.header.get(ops.OP)!r} needs the field {name!r}")
        if value is not None and not isinstance(value, kind):
            raise ApiError(BAD_REQUEST, f"field {name!r} of op {self.header.get(ops.OP)!r} has "
                           f"the wrong type {type(value).__name__}")
        return value

    def number(self, name: str, *, above: float | None = None, least: float | None = None,
               most: float) -> float | None:
        """A numeric field (None when absent), finite and in range: > ``above``,
        >= ``least``, <= ``most``; else ``bad_request`` naming the field and the range.
        JSON carries NaN and Infinity, and a bool is an int in Python: both refused."""
        return self._checked(name, False, above, least, most)

    def count(self, name: str, most: int = MAX_COUNT) -> int | None:
        """An integer field >= 0 (None when absent), as ``number`` checks it."""
        value = self._checked(name, True, None, 0, most)
        return None if value is None else int(value)

    def _checked(self, name: str, integer: bool, above: float | None, least: float | None,
                 most: float) -> float | None:
        value = self.header.get(name)
        if value is None:
            return None
        what = "an integer" if integer else "a number"
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (integer and not isinstance(value, int)) or not math.isfinite(value)
                or (above is not None and value <= above)
                or (least is not None and value < least) or value > most):
            low = f"> {_plain(above)}" if above is not None else f">= {_plain(least)}"
            raise ApiError(BAD_REQUEST, f"field {name!r} of op {self.header.get(ops.OP)!r} must "
                           f"be {what} {low} and <= {_plain(most)}; got {value!r}")
        return float(value)

    def send(self, header: dict[str, Any], blob: bytes | None = None) -> None:
        """One message of a streamed reply; ClientGone when the client hung up."""
        if self.stream is None:
            raise ClientGone("this request came from a container: it takes one reply")
        try:
            write_message(self.stream, header, blob)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                TimeoutError) as exc:  # TimeoutError: not read for COLDSNAP_IDLE_TIMEOUT_S
            raise ClientGone(str(exc)) from exc

    def need_blob(self, what: str) -> bytes:
        if self.blob is None:
            raise ApiError(BAD_REQUEST, f"op {self.header.get(ops.OP)!r} needs {what} as its blob")
        return self.blob


class Api:
    """The handlers of the socket API's ops, over one ``Platform``; they answer a
    ``Request`` with a ``Reply`` or raise ``ApiError``."""

    def __init__(self, platform: Platform, warning: str | None = None,
                 stop: Callable[[], None] | None = None,
                 dashboard: DashboardAuth | None = None) -> None:
        self.platform = platform
        self.dashboard = dashboard  # its one-time login codes (`coldsnap dashboard`)
        self.warning = warning  # shown by clients that start the server (engine=auto)
        self._stop = stop  # ends the server (server_stop)
        # The fleet's hosts (Fleet.hosts; docs/fleet.md); the daemon points it there.
        self.hosts: Callable[[], list[dict[str, Any]]] = lambda: []

    def ping(self, req: Request) -> Reply:
        engine = self.platform.engine
        reply = {"ok": True, "version": coldsnap_version(), "engine": engine.name,
                 "host_key": engine.host_key, "pid": os.getpid(),
                 # A client compares these: a background server it started that runs
                 # other coldsnap code (an update, another checkout) is replaced.
                 "code": coldsnap_fingerprint(), "embedded": os.environ.get(EMBEDDED_ENV) == "1",
                 "busy": self.platform.busy(), "http": self.platform.deploys.web_base,
                 "hosts": self.hosts()}
        if self.warning:
            reply["warning"] = self.warning
        return reply, None

    def server_stop(self, req: Request) -> Reply:
        """Stop the server as SIGTERM does: containers drain, exit hooks run."""
        if self._stop is None:
            raise ApiError(BAD_REQUEST, "this server can't be stopped through its API")
        self._stop()
        return {"ok": True, "pid": os.getpid()}, None

    def deploy(self, req: Request) -> Reply:
        progress = bool(req.field("progress", bool, False))

        def report(line: str) -> None:
            # Streamed as it happens; raising (the client left) stops the build.
            if progress:
                req.send({"ok": True, "progress": line})

        result = self.platform.deploys.deploy(
            filename=req.field("filename", str, "app.py"),
            source=req.need_blob("the app's source"),
            name=req.field("name", str, None),
            ephemeral=bool(req.field("ephemeral", bool, False)),
            snapshots=bool(req.field("snapshots", bool, True)),
            cwd=req.field("cwd", str, None),
            app_dir=req.field("app_dir", str, None),
            report=report,
        )
        return {"ok": True, **result}, None

    def call(self, req: Request) -> Reply:
        # Checked before the call is queued; 0 would cancel it before it could start.
        timeout = req.number("timeout", above=0, most=MAX_WAIT_S)
        if req.field("stream", bool, False):  # remote_gen: items as they come
            return call_ops.stream_call(self, req, timeout)
        call, pool = self._submit(req)
        return self._await(call, pool, timeout)

    def spawn(self, req: Request) -> Reply:
        call, _ = self._submit(req)
        self.platform.calls.add(call)
        return {"ok": True, "call_id": call.id}, None

    def get(self, req: Request) -> Reply:
        """``forget``: the result is wanted once (``map``): drop it once answered, rather
        than keep it on disk until it expires."""
        timeout = req.number("timeout", least=0, most=MAX_WAIT_S)  # 0 polls, as Modal's
        call_id = req.field("call_id", str)
        reply = self._await(self.platform.calls.get(call_id), None, timeout)
        if req.field("forget", bool, False):
            self.platform.calls.forget(call_id)
        return reply

    def _submit(self, req: Request, stream: bool = False) -> tuple[Call, Pool]:
        call, pool = self.platform.submit(
            req.field("app", str), req.field("tag", str), req.field("method", str, None),
            req.need_blob("arguments"), stream=stream,
            variant=parse_variant(req.field("variant", dict, None)))
        call_ops.add_to_graph(self, req, call, pool)
        return call, pool

    def _await(self, call: Call, pool: Pool | None, timeout: float | None) -> Reply:
        if not call.done.wait(timeout):
            if pool is not None:
                pool.cancel(call)
            raise ApiError(TIMEOUT, f"no result from {call.label} within {timeout:g} s "
                           f"(call {call.id})")
        outcome = call.outcome
        assert outcome is not None
        extra = {"call_id": call.id, "logs": call.logs, "attempts": call.attempts}
        if outcome.ok:
            return {"ok": True, **extra}, outcome.blob
        assert outcome.error is not None
        return {**outcome.error.to_header(), **extra}, outcome.error.blob

    def lookup(self, req: Request) -> Reply:
        return {"ok": True, **self.platform.deploys.lookup(req.field("app", str),
                                                   req.field("tag", str))}, None

    def apps_ls(self, req: Request) -> Reply:
        return {"ok": True, "apps": self.platform.reports.apps()}, None

    def app_stop(self, req: Request) -> Reply:
        result = self.platform.deploys.stop(req.field("app", str),
                                        bool(req.field("delete", bool, False)))
        self.platform.sandboxes.end_app(req.field("app", str))  # as Modal's app stop does
        return {"ok": True, **result}, None

    def app_drain(self, req: Request) -> Reply:
        wait = req.number("wait", least=0, most=MAX_WAIT_S)
        result = self.platform.deploys.drain(req.field("app", str),
                                                60.0 if wait is None else wait)
        return {"ok": True, **result}, None

    def app_stats(self, req: Request) -> Reply:
        app = req.field("app", str)
        return {"ok": True, **self.platform.reports.stats(app),
                "schedules": self.platform.schedules.of_app(app)}, None

    def logs(self, req: Request) -> Reply | None:
        app = req.field("app", str)
        if not self.platform.logs.has(app):  # a sandbox-only app has a log too
            self.platform.deploys.require(app)
        book = self.platform.logs.app(app)
        timestamps = bool(req.field("timestamps", bool, False))
        tail = req.count("tail")
        lines, position = book.tail_timed(200 if tail is None else tail)
        if not req.field("follow", bool, False):
            return _log_reply(lines, timestamps), None
        req.send(_log_reply(lines, timestamps))
        while True:  # until the client hangs up (the write fails)
            lines, position = book.since_timed(position, wait_s=1.0)
            req.send(_log_reply(lines, timestamps))

    def object(self, req: Request) -> Reply:
        """A Dict's or a Queue's action (server/objects.py)."""
        return self.platform.objects.answer(req)

    def metrics(self, req: Request) -> Reply:
        return {"ok": True, "text": self.platform.metrics.exposition().decode()}, None

    def snapshots_ls(self, req: Request) -> Reply:
        snapshots = self.platform.snapshots
        hosts = on_hosts(self.platform.engine, self.platform.db)  # a fleet's hosts' own
        return {"ok": True, **snapshots.usage(), **hosts,
                "snapshots": snapshots.ls() + hosts.get("snapshots", [])}, None

    def snapshot_inspect(self, req: Request) -> Reply:
        info = self.platform.snapshots.inspect(req.field("key", str))
        return {"ok": True, "snapshot": info}, None

    def snapshot_rm(self, req: Request) -> Reply:
        key = req.field("key", str)
        return {"ok": True, "removed": key, **self.platform.snapshots.rm(key)}, None

    def snapshots_gc(self, req: Request) -> Reply:
        removed, quarantine = self.platform.snapshots.gc(req.count("keep"))
        return {"ok": True, "result": removed, "quarantine": quarantine}, None

    def snapshots_why(self, req: Request) -> Reply:
        explanations = self.platform.snapshots.why(req.field("app", str),
                                                   req.field("function", str, None))
        return {"ok": True, "functions": explanations}, None

    def snapshots_verify(self, req: Request) -> Reply:
        results = self.platform.snapshots.verify(req.field("key", str, None))
        return {"ok": True, "results": results}, None

    def token_create(self, req: Request) -> Reply:
        key, secret = self.platform.tokens.create(req.field("name", str, ""))
        return {"ok": True, "key": key, "secret": secret}, None

    def token_ls(self, req: Request) -> Reply:
        return {"ok": True, "tokens": self.platform.tokens.list()}, None

    def token_rm(self, req: Request) -> Reply:
        key = req.field("key", str)
        if not self.platform.tokens.remove(key):
            raise ApiError(NOT_FOUND, f"no proxy token {key!r}; `coldsnap token ls` lists them")
        return {"ok": True, "removed": key}, None


def _plain(bound: float | None) -> str:
    """A range's bound as people write it: 604800, not 604800.0 or 6.048e+05."""
    return str(int(bound)) if bound is not None and float(bound).is_integer() else str(bound)


def _log_reply(lines: list[LogLine], timestamps: bool) -> dict[str, Any]:
    """``lines`` as they were written; with ``timestamps``, ``times`` beside them (when
    each reached the server, Unix seconds), so clients that don't ask see no change."""
    reply: dict[str, Any] = {"ok": True, "lines": [line.text for line in lines]}
    if timestamps:
        reply["times"] = [line.time for line in lines]
    return reply


HANDLERS: dict[str, Callable[[Api, Request], Reply | None]] = {
    ops.PING: Api.ping,
    ops.SERVER_STOP: Api.server_stop,
    ops.DEPLOY: Api.deploy,
    ops.CALL: Api.call,
    ops.SPAWN: Api.spawn,
    ops.GET: Api.get,
    ops.CANCEL: call_ops.cancel,
    ops.CALL_GRAPH: call_ops.call_graph,
    ops.LOOKUP: Api.lookup,
    ops.APPS_LS: Api.apps_ls,
    ops.APP_STOP: Api.app_stop,
    ops.APP_DRAIN: Api.app_drain,
    ops.APP_STATS: Api.app_stats,
    ops.LOGS: Api.logs,
    ops.OBJECT: Api.object,
    ops.SNAPSHOTS_LS: Api.snapshots_ls,
    ops.SNAPSHOT_INSPECT: Api.snapshot_inspect,
    ops.SNAPSHOT_RM: Api.snapshot_rm,
    ops.SNAPSHOTS_GC: Api.snapshots_gc,
    ops.SNAPSHOTS_VERIFY: Api.snapshots_verify,
    ops.SNAPSHOTS_WHY: Api.snapshots_why,
    ops.TOKEN_CREATE: Api.token_create,
    ops.TOKEN_LS: Api.token_ls,
    ops.TOKEN_RM: Api.token_rm,
    ops.METRICS: Api.metrics,
    ops.DASHBOARD_LOGIN: dashboard_login,
    **OBJECT_HANDLERS,  # volumes and secrets (objects_api.py)
    **SANDBOX_HANDLERS,  # sandboxes (sandbox_api.py)
}


# What a container may ask while it runs a call: what calling other functions needs
# (not lookup: its reply carries functions' options, env= secrets included), Dicts
# and Queues, and volumes (never secrets).
CONTAINER_OPS = (frozenset({ops.PING, ops.CALL, ops.SPAWN, ops.GET, ops.OBJECT, ops.CANCEL,
                            ops.CALL_GRAPH})
                 | VOLUME_CONTAINER_OPS | SANDBOX_OPS)


def answer(api: Api, header: dict[str, Any], blob: bytes | None,
           stream: BinaryIO | None) -> Reply | None:
    """Run the handler of ``header["op"]``; errors become error replies. None: a
    streaming client hung up (nothing is left to send)."""
    op = header.get(ops.OP)
    handler = HANDLERS.get(op) if isinstance(op, str) else None
    try:
        if handler is None:
            raise ApiError(BAD_REQUEST, f"unknown op {op!r}; known ops: "
                           f"{', '.join(sorted(HANDLERS))}")
        return handler(api, Request(header, blob, stream))
    except ApiError as exc:
        return exc.to_header(), exc.blob
    except ClientGone:
        return None
    except OSError as exc:  # the server's own I/O (disk full, permissions, ...)
        logger.exception("op %r failed", op)
        return ApiError(INTERNAL, f"the server failed handling op {op!r}: {exc}; see the "
                        "server log").to_header(), None
    except Exception as exc:
        logger.exception("op %r failed: a server bug", op)
        return ApiError(INTERNAL, f"the server failed handling op {op!r}: {exc!r}; see the "
                        "server log").to_header(), None


def answer_container(api: Api, header: dict[str, Any], blob: bytes | None) -> Reply:
    """A request a container sent over its control pipe (a function calling another)."""
    op = header.get(ops.OP)
    if op not in CONTAINER_OPS:
        error = ApiError(BAD_REQUEST, f"op {op!r} can't be sent from inside a container; "
                         f"only {', '.join(sorted(CONTAINER_OPS))}")
        return error.to_header(), None
    return answer(api, header, blob, None) or (ApiError(
        INTERNAL, f"op {op!r} gave no reply").to_header(), None)
