"""Web endpoints: what a web decorator declares, and the URLs they are served at.

A function decorated with ``@coldsnap.fastapi_endpoint()``, ``asgi_app()``,
``wsgi_app()`` or ``web_server(port)`` (or a method of an ``@app.cls`` class) is
one ``WebEndpoint``. The client puts it in the app's description; the server's
gateway routes ``http://<app>--<label>.localhost:8000/...`` (or the path form
``http://127.0.0.1:8000/web/<app>--<label>/...``) to a container of it; the runtime
serves it inside the container and tells the server its port in ``ready``.
Example::

    endpoint = WebEndpoint(kind=FASTAPI, name="embed", label=default_label("embed"))
    endpoint_host("search", endpoint.label)  # "search--embed"
"""

from __future__ import annotations

import dataclasses
import functools
import re
import socket
from typing import Any

from coldsnap.wire.errors import InvalidError

FASTAPI = "fastapi_endpoint"
ASGI = "asgi_app"
WSGI = "wsgi_app"
WEB_SERVER = "web_server"
KINDS = (FASTAPI, ASGI, WSGI, WEB_SERVER)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# One DNS label holds "<app>--<label>": at most 63 characters, lowercase.
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_HOST_LABEL = 63
# The path form's prefix: http://127.0.0.1:8000/web/<app>--<label>/...
PATH_PREFIX = "/web/"
# Headers of a proxy-auth token (Modal's Modal-Key / Modal-Secret).
KEY_HEADER = "Coldsnap-Key"
SECRET_HEADER = "Coldsnap-Secret"
# Modal's names, accepted too: a client ported from Modal sends them.
MODAL_KEY_HEADER = "Modal-Key"
MODAL_SECRET_HEADER = "Modal-Secret"


@dataclasses.dataclass(frozen=True)
class WebEndpoint:
    """One web endpoint of a function or class.

    kind: which decorator (``FASTAPI``, ``ASGI``, ``WSGI``, ``WEB_SERVER``).
    name: the decorated function (a class's method name; a function's tag).
    label: the URL's label: ``http://<app>--<label>.localhost:8000``.
    method: the HTTP method of a ``fastapi_endpoint``.
    docs: a ``fastapi_endpoint`` also serves ``/docs``.
    requires_proxy_auth: requests need ``Coldsnap-Key``/``Coldsnap-Secret`` headers.
    port: the port a ``web_server`` listens on inside the container.
    startup_timeout: seconds a ``web_server`` may take to accept connections.
    """

    kind: str
    name: str
    label: str
    method: str = "GET"
    docs: bool = False
    requires_proxy_auth: bool = False
    port: int | None = None
    startup_timeout: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> WebEndpoint:
        """An endpoint from ``to_dict()``'s form; InvalidError says what is wrong."""
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            raise InvalidError(f"not a web endpoint: {data!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        endpoint = cls(**{k: v for k, v in data.items() if k in fields})
        endpoint.validate()
        return endpoint

    def validate(self) -> None:
        decorator = f"@coldsnap.{self.kind}()"
        if not is_label(self.label):
            raise InvalidError(
                f"{decorator}: label {self.label!r} is not usable in a host name: use "
                "lowercase letters, digits and single '-'s, starting and ending with a "
                "letter or digit, e.g. label='embed'")
        if self.method not in HTTP_METHODS:
            raise InvalidError(f"{decorator}: method {self.method!r} is not one of "
                               f"{', '.join(HTTP_METHODS)}")
        if self.kind == WEB_SERVER and not (
                isinstance(self.port, int) and not isinstance(self.port, bool)
                and 1 <= self.port <= 65535):
            raise InvalidError(
                f"@coldsnap.web_server(port) needs the port your server listens on inside "
                f"the container, an integer from 1 to 65535, not {self.port!r}: "
                "e.g. @coldsnap.web_server(8000)")
        if not (isinstance(self.startup_timeout, int | float)
                and not isinstance(self.startup_timeout, bool) and self.startup_timeout > 0):
            raise InvalidError(f"{decorator}: startup_timeout must be a positive number of "
                               f"seconds, not {self.startup_timeout!r}")


def is_label(label: object) -> bool:
    # No "--": it separates the app from the label in a host name.
    return isinstance(label, str) and bool(_LABEL_RE.match(label)) and "--" not in label


def default_label(*names: str) -> str:
    """The label a decorator without ``label=`` gets: its names, lowercase, with
    '-' for what a host name can't hold (``Embedder.embed`` -> ``embedder-embed``)."""
    text = "-".join(names).lower()
    text = re.sub(r"[^a-z0-9-]+", "-", text).strip("-")
    return re.sub(r"-{2,}", "-", text) or "web"


def endpoint_host(app: str, label: str) -> str:
    """The first DNS label of an endpoint's host name: ``<app>--<label>``."""
    return f"{app}--{label}"


def split_host(host_label: str) -> tuple[str, str] | None:
    """``<app>--<label>`` -> (app, label); None when it has no ``--``. The label never
    holds ``--`` (``default_label`` collapses dashes), so the last one splits."""
    app, sep, label = host_label.rpartition("--")
    return (app, label) if sep and app and label else None


def endpoint_url(base: str, app: str, label: str) -> str:
    """The URL users open: ``http://<app>--<label>.localhost:8000`` for a gateway on a
    loopback address, else (or when the app's name can't be in a host name: ``_``,
    ``.``, capitals) the path form on the gateway's address (``base`` is
    ``http://HOST:PORT``)."""
    scheme, _, address = base.partition("://")
    host, _, port = address.rpartition(":")
    name = endpoint_host(app, label)
    if host in ("127.0.0.1", "localhost", "0.0.0.0") and host_safe(name):
        return f"{scheme}://{name}.localhost:{port}"
    return f"{base}{PATH_PREFIX}{name}"


def host_safe(name: str) -> bool:
    """``name`` can be a DNS label as it is (browsers lowercase host names)."""
    return len(name) <= MAX_HOST_LABEL and bool(_LABEL_RE.match(name))


def path_form(url: str) -> str:
    """The path form of a host-form URL, for clients that can't resolve
    ``*.localhost`` (Python's resolver on most Linux systems):
    ``http://app--l.localhost:8000`` -> ``http://127.0.0.1:8000/web/app--l``."""
    scheme, _, rest = url.partition("://")
    host, _, port = rest.partition("/")[0].partition(":")
    name, _, domain = host.partition(".")
    if domain != "localhost":
        return url
    return f"{scheme}://127.0.0.1{':' + port if port else ''}{PATH_PREFIX}{name}"


def usable_url(url: str) -> str:
    """``url``, or its path form when this machine can't resolve its host name (a
    ``requests.get(fn.get_web_url())`` must work; browsers and curl resolve
    ``*.localhost`` themselves)."""
    host = url.partition("://")[2].partition("/")[0].rpartition(":")[0]
    return url if _resolves(host) else path_form(url)


@functools.lru_cache(maxsize=256)
def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True
