"""What the gateway answers when a request can't be served: one text per case, the
same from its lean path (exchange.py) and from its aiohttp handlers (proxy.py)."""

from __future__ import annotations

# Request body bytes held while no container has taken the request yet.
MAX_HELD = 1024 * 1024

REASONS = {400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found",
           413: b"Payload Too Large", 502: b"Bad Gateway", 503: b"Service Unavailable",
           504: b"Gateway Timeout"}


def timed_out(label: str, timeout_s: float) -> str:
    return (f"coldsnap gateway: the request to {label} ran longer than its timeout of "
            f"{timeout_s:g} s (raise timeout= in the decorator if it needs longer)\n")


def too_large(max_body: int) -> str:
    return (f"coldsnap gateway: the request body is over the limit of {max_body} bytes "
            "(COLDSNAP_HTTP_MAX_BODY_BYTES, a setting of the server); upload large files "
            "to a volume instead\n")


def no_port(worker_id: str, endpoint: str) -> str:
    return (f"coldsnap gateway: container {worker_id} serves no web endpoint {endpoint!r} "
            "(it did not report its port)\n")


def refused(worker_id: str, exc: BaseException, app: str) -> str:
    return (f"coldsnap gateway: could not connect to the web server of container "
            f"{worker_id} ({exc}); it died or stopped listening: see `coldsnap logs {app}`\n")


def broke(worker_id: str, died: bool, exc: BaseException | None, app: str) -> str:
    what = "died" if died else "broke the connection"
    why = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return (f"coldsnap gateway: container {worker_id} {what} while serving this request"
            f"{why}; see `coldsnap logs {app}`\n")
