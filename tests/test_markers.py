"""The lifecycle and method markers: misuse fails when the marker is applied, with a
message that names it and the fix; marked methods still work as plain methods."""

from __future__ import annotations

import pytest

import coldsnap
from coldsnap.wire.errors import InvalidError


@pytest.mark.parametrize(
    ("decorator", "name"),
    [
        (coldsnap.enter, "@coldsnap.enter"),
        (coldsnap.method, "@coldsnap.method"),
        (coldsnap.build, "@coldsnap.build"),
        (coldsnap.exit, "@coldsnap.exit"),
    ],
)
def test_marker_without_parentheses(decorator: object, name: str) -> None:
    with pytest.raises(InvalidError) as info:

        class Embedder:
            @decorator  # type: ignore[misc,operator]
            def load(self) -> None: ...

    assert str(info.value) == (
        f"{name} was used without parentheses on "
        "test_marker_without_parentheses.<locals>.Embedder.load. "
        f"Write {name}() (with parentheses): the decorator takes options and must be called."
    )


@pytest.mark.parametrize(
    ("marker", "name"),
    [
        (coldsnap.enter(), "@coldsnap.enter()"),
        (coldsnap.enter(snap=True), "@coldsnap.enter(snap=True)"),
        (coldsnap.method(), "@coldsnap.method()"),
        (coldsnap.build(), "@coldsnap.build()"),
    ],
)
def test_marker_on_a_plain_function(marker: object, name: str) -> None:
    with pytest.raises(InvalidError) as info:

        @marker  # type: ignore[misc,operator]
        def load() -> None: ...

    message = str(info.value)
    assert message.startswith(
        f"{name} was applied to the plain function "
        "'test_marker_on_a_plain_function.<locals>.load'"
    )
    assert "only works on methods of a class decorated with @app.cls()" in message
    assert "use @app.function() for a plain function" in message


def test_marker_on_a_registered_function_handle() -> None:
    app = coldsnap.App("v-handle")

    @app.function()
    def square(x: int) -> int:
        return x * x

    with pytest.raises(InvalidError, match=r"^@coldsnap\.method\(\) was applied to the plain"):
        coldsnap.method()(square)


def test_method_and_lifecycle_on_one_function() -> None:
    with pytest.raises(InvalidError, match=r"marked both @coldsnap.enter\(\) and @coldsnap"):

        class Embedder:
            @coldsnap.enter()
            @coldsnap.method()
            def run(self) -> None: ...


def test_marked_methods_still_work_as_plain_methods() -> None:
    class Embedder:
        @coldsnap.enter(snap=True)
        def load(self) -> None:
            self.model = "m"

        @coldsnap.method()
        def run(self, x: int) -> str:
            return f"{self.model}:{x}:{self.helper()}"

        @coldsnap.method()
        def helper(self) -> str:
            return "h"

    obj = Embedder()
    obj.load()
    assert obj.run(3) == "m:3:h"
