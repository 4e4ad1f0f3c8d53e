"""The web decorators: what they record, and their errors for misuse."""

from __future__ import annotations

import pytest

import coldsnap
from coldsnap._runtime.describe import describe_app
from coldsnap.wire.description import AppDescription
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.web import ASGI, FASTAPI, WEB_SERVER, WSGI


def _describe(app: coldsnap.App) -> AppDescription:
    return AppDescription.from_dict(describe_app(app).to_dict())


def test_each_decorator_records_its_endpoint_with_a_default_label() -> None:
    app = coldsnap.App("web-app")

    @app.function()
    @coldsnap.fastapi_endpoint(method="post", docs=True)
    def embed_text(item: dict) -> dict:
        return item

    @app.function()
    @coldsnap.asgi_app(label="api")
    def make_api() -> object:
        return object()

    @app.function()
    @coldsnap.wsgi_app(requires_proxy_auth=True)
    def flask_app() -> object:
        return object()

    @app.cls(enable_memory_snapshot=True)
    class Server:
        @coldsnap.enter(snap=True)
        def start(self) -> None:
            pass

        @coldsnap.web_server(8000, startup_timeout=30)
        def serve(self) -> None:
            pass

    functions = _describe(app).functions
    (embed,) = functions["embed_text"].web
    assert (embed.kind, embed.label, embed.method, embed.docs) == (FASTAPI, "embed-text",
                                                                    "POST", True)
    assert functions["make_api"].web[0].kind == ASGI
    assert functions["make_api"].web[0].label == "api"
    assert functions["flask_app"].web[0].kind == WSGI
    assert functions["flask_app"].web[0].requires_proxy_auth
    (serve,) = functions["Server"].web
    assert (serve.kind, serve.name, serve.label, serve.port, serve.startup_timeout) == (
        WEB_SERVER, "serve", "server-serve", 8000, 30)
    assert functions["Server"].methods == ("serve",)
    assert embed_text.local({"a": 1}) == {"a": 1}  # the function itself is unchanged


def test_missing_parentheses_name_the_fix() -> None:
    with pytest.raises(InvalidError, match=r"@coldsnap.fastapi_endpoint\(\) \(with paren"):
        @coldsnap.fastapi_endpoint
        def f() -> None:
            pass


def test_web_server_without_a_port_says_to_give_one() -> None:
    with pytest.raises(InvalidError, match=r"web_server\(8000\)"):
        @coldsnap.web_server  # type: ignore[arg-type]
        def f() -> None:
            pass
    with pytest.raises(InvalidError, match="integer from 1 to 65535"):
        coldsnap.web_server(70000)


def test_two_web_decorators_on_one_function_are_refused() -> None:
    with pytest.raises(InvalidError, match="two web decorators"):
        @coldsnap.asgi_app()
        @coldsnap.fastapi_endpoint()
        def f() -> None:
            pass


def test_a_web_decorator_above_app_function_says_to_swap_them() -> None:
    app = coldsnap.App("web-app")
    with pytest.raises(InvalidError, match="put @app.function\\(\\) on top"):
        @coldsnap.fastapi_endpoint()
        @app.function()
        def f() -> None:
            pass


def test_a_web_decorator_on_a_lifecycle_hook_is_refused() -> None:
    with pytest.raises(InvalidError, match="lifecycle hook"):
        class Server:
            @coldsnap.fastapi_endpoint()
            @coldsnap.enter()
            def start(self) -> None:
                pass


@pytest.mark.parametrize("label", ["Has_Caps", "a--b", "-x", "x" * 64])
def test_a_label_that_cannot_be_a_host_name_is_refused(label: str) -> None:
    with pytest.raises(InvalidError, match="not usable in a host name"):
        coldsnap.asgi_app(label=label)


def test_a_bad_http_method_is_refused() -> None:
    with pytest.raises(InvalidError, match="method 'FETCH' is not one of"):
        coldsnap.fastapi_endpoint(method="fetch")


def test_a_web_endpoint_with_block_network_is_refused() -> None:
    app = coldsnap.App("web-blocked")
    with pytest.raises(InvalidError, match=r"@app.function\(\): page is a web endpoint, and "
                                           r"block_network=True leaves its containers no network"):
        @app.function(block_network=True)
        @coldsnap.fastapi_endpoint()
        def page() -> str:
            return "hi"

    with pytest.raises(InvalidError, match=r"@app.cls\(\): Server.serve is a web endpoint.*"
                                           r"Remove block_network=True"):
        @app.cls(block_network=True)
        class Server:
            @coldsnap.web_server(8000)
            def serve(self) -> None:
                pass


def test_batched_and_a_web_decorator_are_refused_in_either_order() -> None:
    with pytest.raises(InvalidError, match="can't go with @coldsnap.fastapi_endpoint"):
        @coldsnap.batched(max_batch_size=3, wait_ms=10)
        @coldsnap.fastapi_endpoint()
        def f(xs: list[int]) -> list[int]:
            return xs
    with pytest.raises(InvalidError, match="can't go with @coldsnap.batched"):
        @coldsnap.fastapi_endpoint()
        @coldsnap.batched(max_batch_size=3, wait_ms=10)
        def g(xs: list[int]) -> list[int]:
            return xs


def test_a_web_endpoint_of_a_class_needs_defaults_for_its_parameters() -> None:
    app = coldsnap.App("web-app")
    with pytest.raises(InvalidError, match="parameter\\(s\\) y have no default"):
        @app.cls()
        class Q:
            y: int = coldsnap.parameter()

            @coldsnap.fastapi_endpoint()
            def e(self) -> int:
                return self.y


def test_a_scheduled_function_needs_defaults_for_its_arguments() -> None:
    app = coldsnap.App("web-app")
    with pytest.raises(InvalidError, match="needs x, but a scheduled run passes no arguments"):
        @app.function(schedule=coldsnap.Period(seconds=3))
        def tick(x: int) -> None:
            pass
