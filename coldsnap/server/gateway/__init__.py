"""The HTTP gateway: web endpoints' requests, routed to their containers (docs/web.md)."""

from coldsnap.server.gateway.server import Gateway, GatewayBindError

__all__ = ["Gateway", "GatewayBindError"]
