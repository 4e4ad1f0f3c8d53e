"""One request through the gateway's lean path and its response (see front.py).

A request for a web endpoint takes an input slot of a container (``Proxy.lease``),
goes to the container's server on a kept-alive connection, and its response is
written to the client as it arrives. Errors answer as the aiohttp handlers do
(docs/web.md): 502 the container died or broke the exchange, 503 it could not boot,
504 past the function's timeout, 413 a body over the limit. Anything else goes
to the aiohttp handlers as it came.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from coldsnap.server.errors import ApiError
from coldsnap.server.fleet.relay_route import web_route
from coldsnap.server.gateway import heads, messages
from coldsnap.wire.errors import TIMEOUT

if TYPE_CHECKING:
    from coldsnap.server.gateway.front import Front
    from coldsnap.server.gateway.routes import Route
    from coldsnap.server.gateway.upstream import Upstream

NO_BODY_STATUS = frozenset({204, 304})


@dataclasses.dataclass
class Target:
    kind: str  # "container", "internal" (the aiohttp handlers) or "upgrade" (piped there)
    pool: Any = None
    endpoint: Any = None
    where: Route | None = None
    timeout_s: float = 0.0


class Lost:
    """The server's connection ended before a response came: why."""

    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc


class Exchange:
    """A request from ``front``'s client, and its response."""

    def __init__(self, front: Front, method: bytes, url: bytes,
                 headers: list[tuple[bytes, bytes]], keep_alive: bool, http11: bool) -> None:
        self.front = front
        self.http11 = http11
        self.method = method
        self.url = url
        self.headers = headers
        self.keep_alive = keep_alive
        self.target = Target("internal")
        self.leftover = b""  # bytes after an upgrade request (a WebSocket's first frames)
        self.chunked = any(n.lower() == b"transfer-encoding" and b"chunked" in v.lower()
                           for n, v in headers)
        self.body_done = False
        self.body_seen = 0
        self.held: list[bytes] = []
        self.held_bytes = 0
        self.upstream: Upstream | None = None
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.running = False  # the task began (one cancelled before it can't clean up)
        self.aborted = ""  # "timeout" or "too large", once the task was cancelled for it
        self.client_left = False
        self.broken = False  # the container failed it: the pool must see it dead first
        self.started = False  # response headers went out: no error status now
        self.framing = "length"
        self.complete = False
        self.cut = False  # the response was cut short: close the client's connection
        self.client_keep = keep_alive
        self.upstream_keep = False
        self.close_delimited = False
        self.out: list[bytes] = []
        self.done: asyncio.Future[Lost | None] | None = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self.running = True
        if self.client_left:
            return
        try:
            if self.aborted or self._declared_too_large():
                self._aborted()
            elif self.target.kind == "container":
                await self._to_container()
            elif self.target.kind == "internal":
                await self._to_internal()
            else:
                await self._to_pipe()
                return
        except asyncio.CancelledError:
            self._aborted()
        finally:
            if self.timer is not None:
                self.timer.cancel()
        self.front.finished(self, self.client_keep and not self.cut and self.body_done)

    # where it goes
    async def _to_container(self) -> None:
        target = self.target
        for attempt in (1, 2):
            try:
                lease = await self.front.proxy.lease(target.pool, self.front.proxy.lease_wait_s)
            except ApiError as exc:
                self._reply(504 if exc.kind == TIMEOUT else 503,
                            f"coldsnap gateway: {exc.message}\n")
                return
            try:
                if await self._via(lease, attempt):
                    return
            finally:
                try:
                    if self.broken:  # the pool must see it dead before it hands it out
                        await asyncio.get_running_loop().run_in_executor(
                            None, lease.worker.exited.wait, 1.0)
                finally:
                    lease.release()

    async def _via(self, lease: Any, attempt: int) -> bool:
        """Pass the request to ``lease``'s container; False when its server refused
        the connection (it died just before: another container may take it)."""
        worker, target = lease.worker, self.target
        assert target.where is not None
        port = worker.web_ports.get(target.endpoint.name)
        if port is None:
            self._reply(502, messages.no_port(worker.id, target.endpoint.name))
            return True
        try:
            relayed = web_route(worker.container, port)  # a host's relay (docs/fleet.md)
            upstream = await (self.front.upstreams.get(relayed.key, relayed.open) if relayed
                              else self.front.upstreams.get(f"{worker.container.address}:{port}"))
        except OSError as exc:
            self.broken = True
            if attempt == 1:
                return False
            self._reply(502, messages.refused(worker.id, exc, target.where.app))
            return True
        # The function's timeout counts from here, as a call's does from its start: not
        # the boot or the wait for a slot. Past it the container is stopped, as for a call.
        self.timer = asyncio.get_running_loop().call_later(target.timeout_s, self._time_out,
                                                           lease)
        lost = await self._exchange(upstream, heads.container_head(self, target.where))
        if lost is not None:
            self.broken = True
            await asyncio.get_running_loop().run_in_executor(None, worker.exited.wait, 1.0)
            self._reply(502, messages.broke(worker.id, lease.lost, lost.exc,
                                            target.where.app))
        return True

    async def _to_internal(self) -> None:
        try:
            upstream = await self.front.upstreams.get(self.front.internal)
        except OSError as exc:
            self._reply(502, f"coldsnap gateway: its own handlers can't be reached ({exc})\n")
            return
        if await self._exchange(upstream, heads.internal_head(self)) is not None:
            self._reply(502, "coldsnap gateway: its own handlers broke the connection\n")

    async def _to_pipe(self) -> None:
        from coldsnap.server.gateway.front import Pipe

        front, client = self.front, self.front.transport
        assert client is not None
        loop = asyncio.get_running_loop()
        try:
            _, pipe = await loop.create_unix_connection(lambda: Pipe(client), front.internal)
        except OSError as exc:
            self._reply(502, f"coldsnap gateway: its own handlers can't be reached ({exc})\n")
            client.close()
            return
        front.pipe, front._upgrade = pipe, None
        pipe.write(b"".join([heads.internal_head(self), self.leftover]))

    async def _exchange(self, upstream: Upstream, head: bytes) -> Lost | None:
        """Send the request on ``upstream``; wait for the response's end (None) or for
        the connection's (Lost, when no response came)."""
        self.upstream = upstream
        self.done = asyncio.get_running_loop().create_future()
        parts = [head, *self.held]
        self.held, self.held_bytes = [], 0
        upstream.send(self, parts, head_only=self.method == b"HEAD")
        if not self.front.waiting:
            self.front.hold(False)
        return await self.done

    # the request's body, from the front
    def request_body(self, data: bytes) -> None:
        if self.aborted:
            return
        self.body_seen += len(data)
        if self.target.kind == "container" and self.body_seen > self.front.proxy.max_body:
            self._abort("too large")
            return
        framed = [b"%x\r\n" % len(data), data, b"\r\n"] if self.chunked else [data]
        self._send_body(framed, len(data))

    def request_end(self) -> None:
        self.body_done = True
        if self.chunked:
            self._send_body([b"0\r\n\r\n"], 0)

    def _send_body(self, parts: list[bytes], size: int) -> None:
        if self.upstream is not None:
            self.upstream.write(parts)
            return
        self.held += parts
        self.held_bytes += size
        if self.held_bytes > messages.MAX_HELD:
            self.front.hold(True)

    # the response, from the upstream connection
    def response_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                      keep_alive: bool) -> None:
        lines = [b"HTTP/1.1 %d " % status, reason, b"\r\n"]
        length, chunked = None, False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered not in heads.HOP:
                lines += [name, b": ", value, b"\r\n"]
        if 100 <= status < 200:  # an interim response: the final one follows
            self.out.append(b"".join([*lines, b"\r\n"]))
            return
        self.started, self.upstream_keep = True, keep_alive
        self._count(status)
        no_body = self.method == b"HEAD" or status in NO_BODY_STATUS
        self.close_delimited = length is None and not chunked and not no_body
        if length is not None and not chunked:
            lines += [b"content-length: ", length, b"\r\n"]
            self.framing = "length"
        elif no_body:
            self.framing = "none"
        elif self.http11:
            lines.append(b"transfer-encoding: chunked\r\n")
            self.framing = "chunked"
        else:
            self.framing, self.client_keep = "close", False
        if not self.client_keep:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self.out.append(b"".join(lines))

    def response_body(self, data: bytes) -> None:
        if self.framing == "chunked":
            self.out += [b"%x\r\n" % len(data), data, b"\r\n"]
        else:
            self.out.append(data)

    def response_end(self) -> None:
        if not self.started or self.complete:
            return  # the end of an interim response
        self.complete = True
        if self.framing == "chunked":
            self.out.append(b"0\r\n\r\n")
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.done(self.upstream_keep and self.body_done and not self.close_delimited)
        self._settle(None)

    def upstream_lost(self, exc: Exception | None) -> None:
        self.upstream = None
        if self.complete:
            return
        if self.started and self.close_delimited and exc is None:
            self.response_end()
            self.flush()
            return
        if self.started:
            self.flush()
            self.cut = True
            self._settle(None)
            return
        self._settle(Lost(exc))

    def flush(self) -> None:
        transport = self.front.transport
        if self.out and transport is not None and not self.client_left:
            transport.writelines(self.out)
        self.out = []

    def upstream_paused(self, paused: bool) -> None:
        self.front.hold(paused)

    def client_paused(self, paused: bool) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None and not upstream.closed:
            if paused:
                upstream.transport.pause_reading()
            else:
                upstream.transport.resume_reading()

    def client_gone(self) -> None:
        self.client_left = True
        if self.task is not None and not self.task.done() and self.running:
            self.task.cancel()

    # endings
    def _settle(self, outcome: Lost | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(outcome)

    def _time_out(self, lease: Any) -> None:
        if not self.complete and not self.aborted:
            lease.timed_out(self.target.timeout_s)
            self._abort("timeout")

    def _abort(self, why: str) -> None:
        if self.aborted or self.complete or self.task is None or self.task.done():
            return
        self.aborted = why
        if self.running:  # else it sees ``aborted`` when it begins
            self.task.cancel()

    def _count(self, status: int) -> None:
        if self.target.kind == "container":  # the aiohttp handlers count the others
            self.front.count(status)

    def declared_too_large(self) -> bool:
        """Its Content-Length is over the limit (a 413 before any of the body is read)."""
        length = self.header(b"content-length")
        return (length is not None and length.isdigit()
                and int(length) > self.front.proxy.max_body)

    def _declared_too_large(self) -> bool:
        if self.target.kind == "container" and self.declared_too_large():
            self.aborted = "too large"
        return bool(self.aborted)

    def _aborted(self) -> None:
        """The task was cancelled: past the timeout, a body too large, or the client
        left. The connection to the container can't be used again."""
        if self.upstream is not None:
            self.upstream.receiver = None
            self.upstream.close()
            self.upstream = None
        if self.client_left:
            return
        if self.started:
            self.flush()
            self.cut = True
        elif self.aborted == "too large":
            self.body_done = False  # the rest of the body is not read: close after
            self._reply(413, messages.too_large(self.front.proxy.max_body))
        elif self.aborted == "timeout":
            where = self.target.where
            assert where is not None
            self._reply(504, messages.timed_out(f"{where.app}--{where.label}",
                                                self.target.timeout_s))

    def _reply(self, status: int, text: str) -> None:
        if self.client_left or self.front.transport is None:
            return
        self.started = True
        self._count(status)
        self.client_keep = self.client_keep and self.body_done
        self.front.transport.writelines(heads.reply(status, text, self.client_keep))
