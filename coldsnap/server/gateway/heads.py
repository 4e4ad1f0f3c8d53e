"""The heads the gateway's lean path writes (exchange.py): a request's for a container
or for the aiohttp handlers, and a whole plain-text response of its own.

A container's request carries the client's headers less those of one hop, and the
gateway's ``x-forwarded-*`` (whatever the client sent under those names is kept only
as the earlier hops of ``x-forwarded-for``). The aiohttp handlers get the client's
own and ``coldsnap-peer``, the client's address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coldsnap.server.gateway import messages

if TYPE_CHECKING:
    from coldsnap.server.gateway.exchange import Exchange
    from coldsnap.server.gateway.routes import Route

# Not passed on: they describe one hop (RFC 9110 7.6.1), or the gateway sets them.
HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
                 b"te", b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection",
                 b"content-length"})
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                       b"x-forwarded-prefix", b"coldsnap-peer"})


def container_head(exchange: Exchange, where: Route) -> bytes:
    """``exchange``'s request head for the container's server, at ``where``'s path."""
    lines = [exchange.method, b" ", where.path.encode("latin-1"), b" HTTP/1.1\r\n"]
    prior = exchange.header(b"x-forwarded-for")
    host = exchange.header(b"host") or b""
    _headers_into(exchange, lines)
    peer = exchange.front.peer
    lines += [b"x-forwarded-for: ", prior + b", " + peer if prior else peer, b"\r\n",
              b"x-forwarded-proto: http\r\nx-forwarded-host: ", host, b"\r\n"]
    if where.prefix:
        lines += [b"x-forwarded-prefix: ", where.prefix.encode("latin-1"), b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


def internal_head(exchange: Exchange) -> bytes:
    """``exchange``'s request head for the aiohttp handlers (an upgrade kept as one)."""
    lines = [exchange.method, b" ", exchange.url, b" HTTP/1.1\r\n"]
    _headers_into(exchange, lines, keep=FORWARDED - {b"coldsnap-peer"})
    lines += [b"coldsnap-peer: ", exchange.front.peer, b"\r\n"]
    if exchange.target.kind == "upgrade":
        lines += [b"connection: upgrade\r\nupgrade: ",
                  exchange.header(b"upgrade") or b"websocket", b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


def _headers_into(exchange: Exchange, lines: list[bytes],
                  keep: frozenset[bytes] = frozenset()) -> None:
    for name, value in exchange.headers:
        lowered = name.lower()
        if lowered in HOP or (lowered in FORWARDED and lowered not in keep):
            continue
        lines += [name, b": ", value, b"\r\n"]
    length = exchange.header(b"content-length")
    if exchange.chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    elif length is not None:
        lines += [b"content-length: ", length, b"\r\n"]


def reply(status: int, text: str, keep_alive: bool) -> list[bytes]:
    """A whole plain-text response."""
    body = text.encode()
    reason = messages.REASONS.get(status, b"Error")
    head = [b"HTTP/1.1 %d " % status, reason,
            b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body)]
    if not keep_alive:
        head.append(b"connection: close\r\n")
    return [b"".join([*head, b"\r\n"]), body]
