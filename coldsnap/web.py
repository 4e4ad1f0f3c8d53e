"""Web endpoint decorators: ``fastapi_endpoint``, ``asgi_app``, ``wsgi_app``, ``web_server``.

They go below ``@app.function()`` on a function, or on a method of an
``@app.cls()`` class, as on Modal. The server's gateway serves each at its own
URL (``coldsnap deploy`` prints it; ``Function.get_web_url()`` returns it)::

    image = coldsnap.Image.debian_slim().pip_install("fastapi[standard]")

    @app.function(image=image, enable_memory_snapshot=True)
    @coldsnap.fastapi_endpoint(method="POST")
    def embed(item: dict) -> dict:
        return {"vector": model.encode(item["text"]).tolist()}

A web decorator changes nothing about the function itself: it records how the
container serves it over HTTP (``WebDeclaration``), for ``@app.function`` to
find (``WebFunction``) or, in a class body, on the method's marker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from coldsnap.markers import MarkedFunction, MarkerFlag, _is_module_level, no_parentheses
from coldsnap.wire import web
from coldsnap.wire.errors import InvalidError


@dataclasses.dataclass(frozen=True)
class WebDeclaration:
    """What a web decorator was given; its label defaults once the name is known."""

    kind: str
    label: str | None = None
    method: str = "GET"
    docs: bool = False
    requires_proxy_auth: bool = False
    port: int | None = None
    startup_timeout: float = 5.0

    def endpoint(self, name: str, *default_names: str) -> web.WebEndpoint:
        """The endpoint of function or method ``name`` (label from ``default_names``)."""
        label = self.label if self.label is not None else web.default_label(*default_names)
        return web.WebEndpoint(kind=self.kind, name=name, label=label, method=self.method,
                               docs=self.docs, requires_proxy_auth=self.requires_proxy_auth,
                               port=self.port, startup_timeout=self.startup_timeout)


class WebFunction:
    """A module-level function under a web decorator, waiting for ``@app.function()``."""

    def __init__(self, raw_f: Callable[..., Any], declaration: WebDeclaration) -> None:
        self.raw_f = raw_f
        self.web = declaration
        self.__name__ = getattr(raw_f, "__name__", "<function>")
        self.__qualname__ = getattr(raw_f, "__qualname__", self.__name__)
        self.__doc__ = raw_f.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@coldsnap.{self.web.kind}() {self.__qualname__}>"


def _decorate(declaration: WebDeclaration) -> Callable[[Any], Any]:
    decorator = f"@coldsnap.{declaration.kind}()"
    # Checked now, with a placeholder name: a bad label or port fails at decoration.
    declaration.endpoint("f", "f").validate()

    def wrap(f: Any) -> Any:
        if type(f).__name__ in ("Function", "Cls"):
            raise InvalidError(
                f"{decorator} was applied above @app.function() / @app.cls(): put "
                f"@app.function() on top and {decorator} below it, directly above `def`.")
        raw = f.raw_f if isinstance(f, MarkedFunction) else f
        if getattr(raw, "__coldsnap_batched__", None) is not None:
            raise InvalidError(
                f"{decorator} can't go with @coldsnap.batched: a web endpoint takes one HTTP "
                "request at a time, not batches of inputs. Batch a function the endpoint "
                "calls instead.")
        if isinstance(f, WebFunction | MarkedFunction) and f.web is not None:
            raise InvalidError(
                f"{f.__qualname__} has two web decorators ({decorator} and "
                f"@coldsnap.{f.web.kind}()): a function serves one web endpoint. Keep one.")
        if isinstance(f, MarkedFunction):
            return _on_marker(f, declaration, decorator)
        if not callable(f) or isinstance(f, type):
            raise InvalidError(f"{decorator} decorates a function, not {f!r}.")
        if _is_module_level(f):
            return WebFunction(f, declaration)
        marked = MarkedFunction(f, MarkerFlag.METHOD)
        marked.web = declaration
        return marked

    return wrap


def _on_marker(f: MarkedFunction, declaration: WebDeclaration, decorator: str) -> Any:
    if f.flags & MarkerFlag.lifecycle():
        raise InvalidError(
            f"{decorator} can't go on {f.__qualname__}, a lifecycle hook: serve the endpoint "
            "from a separate method.")
    marked = MarkedFunction(f.raw_f, f.flags | MarkerFlag.METHOD)
    marked.web = declaration
    return marked


def _check_parentheses(decorator: str, arg: object) -> None:
    if arg is not None:
        raise no_parentheses(decorator, arg)


def fastapi_endpoint(
    _warn_parentheses_missing: object = None, *, method: str = "GET",
    label: str | None = None, docs: bool = False, requires_proxy_auth: bool = False,
    custom_domains: Sequence[str] | None = None,
) -> Callable[[Any], Any]:
    """Serve the function as a FastAPI route at its URL's ``/`` (needs ``fastapi`` in
    the image). Query parameters and a JSON body map onto its arguments, as in FastAPI.
    ``custom_domains`` is accepted and ignored (the gateway serves its own names)."""
    _check_parentheses("@coldsnap.fastapi_endpoint", _warn_parentheses_missing)
    if not isinstance(method, str):
        raise InvalidError(f"@coldsnap.fastapi_endpoint(method=...) takes a string like "
                           f"'POST', not {method!r}")
    return _decorate(WebDeclaration(web.FASTAPI, label, method.upper(), docs,
                                    requires_proxy_auth))


# Modal's older name for fastapi_endpoint.
web_endpoint = fastapi_endpoint


def asgi_app(
    _warn_parentheses_missing: object = None, *, label: str | None = None,
    requires_proxy_auth: bool = False, custom_domains: Sequence[str] | None = None,
) -> Callable[[Any], Any]:
    """Serve the ASGI app (FastAPI, Starlette, ...) the function returns. It is called
    once per container, after the ``enter`` hooks."""
    _check_parentheses("@coldsnap.asgi_app", _warn_parentheses_missing)
    return _decorate(WebDeclaration(web.ASGI, label, requires_proxy_auth=requires_proxy_auth))


def wsgi_app(
    _warn_parentheses_missing: object = None, *, label: str | None = None,
    requires_proxy_auth: bool = False, custom_domains: Sequence[str] | None = None,
) -> Callable[[Any], Any]:
    """Serve the WSGI app (Flask, Django, ...) the function returns."""
    _check_parentheses("@coldsnap.wsgi_app", _warn_parentheses_missing)
    return _decorate(WebDeclaration(web.WSGI, label, requires_proxy_auth=requires_proxy_auth))


def web_server(
    port: int | None = None, *, startup_timeout: float = 5.0, label: str | None = None,
    requires_proxy_auth: bool = False, custom_domains: Sequence[str] | None = None,
) -> Callable[[Any], Any]:
    """Proxy to a server the function starts on ``port`` inside the container (it must
    listen on 0.0.0.0). The function runs once per container and returns; requests go
    through once the port accepts connections, waiting up to ``startup_timeout`` s. A
    server started in ``@enter(snap=True)`` keeps listening across the snapshot."""
    if port is None or callable(port):
        raise InvalidError(
            "@coldsnap.web_server needs the port your server listens on: write "
            "@coldsnap.web_server(8000) (with the port, in parentheses).")
    return _decorate(WebDeclaration(web.WEB_SERVER, label, port=port,
                                    startup_timeout=startup_timeout,
                                    requires_proxy_auth=requires_proxy_auth))
