"""The public API, and misuse of ``@app.function``, ``@app.cls`` and
``@app.local_entrypoint``: it fails when the decorator is applied, with a message that
names the decorator and the fix."""

from __future__ import annotations

import re

import pytest

import coldsnap
from coldsnap.wire.errors import InvalidError


def test_public_api_is_exactly_the_contract() -> None:
    assert sorted(coldsnap.__all__) == sorted(
        ["App", "Cls", "Cron", "Dict", "Error", "Function", "FunctionCall", "Image",
         "Period", "Queue", "Retries", "Sandbox", "Secret", "Volume", "parameter", "batched",
         "current_function_call_id", "current_input_id", "before_snapshot", "after_restore",
         "asgi_app", "build", "concurrent", "enable_output", "enter", "exception", "exit",
         "experimental", "fastapi_endpoint", "method", "web_endpoint", "web_server", "wsgi_app"]
    )
    for name in coldsnap.__all__:
        assert getattr(coldsnap, name) is not None


def test_snap_true_without_enable_memory_snapshot() -> None:
    app = coldsnap.App("v-snap")
    with pytest.raises(InvalidError) as info:

        @app.cls()
        class Embedder:
            @coldsnap.enter(snap=True)
            def load(self) -> None: ...

            @coldsnap.method()
            def run(self) -> None: ...

    message = str(info.value)
    assert message.startswith(
        "@coldsnap.enter(snap=True) on Embedder.load needs "
        "@app.cls(enable_memory_snapshot=True)"
    )
    assert "Add enable_memory_snapshot=True to @app.cls()" in message
    assert "@coldsnap.enter()" in message
    assert "Embedder" not in app.registered_classes


def test_snap_true_in_a_base_class_is_checked_too() -> None:
    class Base:
        @coldsnap.enter(snap=True)
        def warm(self) -> None: ...

    app = coldsnap.App("v-snap-base")
    with pytest.raises(InvalidError, match=r"on Child\.warm needs @app\.cls\(enable_memory"):

        @app.cls(enable_memory_snapshot=False)
        class Child(Base):
            @coldsnap.method()
            def run(self) -> None: ...


@pytest.mark.parametrize("decorator", ["function", "cls", "local_entrypoint"])
def test_app_decorator_without_parentheses(decorator: str) -> None:
    app = coldsnap.App("v-parens")

    def square(x: int) -> int:
        return x * x

    with pytest.raises(InvalidError) as info:
        getattr(app, decorator)(square)
    assert str(info.value).startswith(
        f"@app.{decorator} was used without parentheses on "
        "test_app_decorator_without_parentheses.<locals>.square. "
        f"Write @app.{decorator}() (with parentheses)"
    )


def test_app_function_on_a_marked_method() -> None:
    app = coldsnap.App("v-marked")
    marked = coldsnap.method()(_MethodHolder.__dict__["run"].raw_f)
    with pytest.raises(InvalidError) as info:
        app.function()(marked)
    assert str(info.value).startswith(
        "@app.function() can't register _MethodHolder.run: it is marked @coldsnap.method()"
    )


class _MethodHolder:
    @coldsnap.method()
    def run(self) -> None: ...


def test_two_functions_with_one_name() -> None:
    app = coldsnap.App("v-dupes")

    @app.function()
    def square(x: int) -> int:
        return x * x

    with pytest.raises(InvalidError) as info:

        @app.function()  # type: ignore[no-redef]
        def square(x: int) -> int:
            return x + x

    assert str(info.value) == (
        "@app.function(): app 'v-dupes' already has a function or class named 'square'. "
        "Names must be unique within an app (callers look them up by name); "
        "rename one of them."
    )


def test_a_class_and_a_function_share_one_namespace() -> None:
    app = coldsnap.App("v-dupes-cls")

    @app.function()
    def Embedder() -> None: ...

    with pytest.raises(InvalidError, match=r"^@app\.cls\(\): app 'v-dupes-cls' already has"):

        @app.cls()
        class Embedder:  # type: ignore[no-redef]
            @coldsnap.method()
            def run(self) -> None: ...


def test_class_without_a_method() -> None:
    app = coldsnap.App("v-no-method")
    with pytest.raises(InvalidError) as info:

        @app.cls(enable_memory_snapshot=True)
        class Embedder:
            @coldsnap.enter(snap=True)
            def load(self) -> None: ...

            def run(self) -> None: ...

    assert str(info.value) == (
        "@app.cls(): class Embedder has no @coldsnap.method(), so callers could not invoke "
        "anything on it. Mark the methods callers use with @coldsnap.method()."
    )


def test_app_function_on_a_class_and_app_cls_on_a_function() -> None:
    app = coldsnap.App("v-kinds")
    with pytest.raises(InvalidError, match=r"applied to the class Thing: use @app\.cls\(\)"):

        @app.function()
        class Thing: ...

    with pytest.raises(InvalidError, match=r"^@app\.cls\(\) decorates a class.*@app\.function"):
        app.cls()(lambda: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "-leading", "x" * 65, 7])
def test_invalid_app_names(name: object) -> None:
    with pytest.raises(InvalidError, match=re.escape(f"App name {name!r} is invalid")):
        coldsnap.App(name)  # type: ignore[arg-type]
