"""Which endpoint a request is for: from its host name, or from its path.

``http://<app>--<label>.localhost:8000/items?x=1`` -> (app, label, ``/items?x=1``);
the path form ``http://127.0.0.1:8000/web/<app>--<label>/items?x=1`` gives the
same, with ``/web/<app>--<label>`` as the prefix the app is mounted under.
"""

from __future__ import annotations

import dataclasses

from coldsnap.wire import web


@dataclasses.dataclass(frozen=True)
class Route:
    app: str
    label: str
    path: str  # what the container sees: path and query
    prefix: str = ""  # the path form's prefix, for X-Forwarded-Prefix


def route(host: str, path_qs: str) -> Route | None:
    """The endpoint a request names, or None when it names none."""
    # Host names are case-insensitive; endpoint host names are lowercase.
    name = host.split(":", 1)[0].split(".", 1)[0].lower() if "." in host else ""
    parts = name and web.split_host(name)
    if parts:
        return Route(parts[0], parts[1], path_qs or "/")
    if path_qs.startswith(web.PATH_PREFIX):
        rest = path_qs[len(web.PATH_PREFIX):]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        parts = web.split_host(rest[:cut])
        if parts:
            tail = rest[cut:]
            path = tail if tail.startswith("/") else "/" + tail
            return Route(parts[0], parts[1], path, web.PATH_PREFIX + rest[:cut])
    return None
