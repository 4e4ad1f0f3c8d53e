"""``@coldsnap.batched``: its settings reach the options (and a container's input
slots), and misuse fails at decoration with a message naming the decorator and the fix
(Modal's rules and bounds)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, List, Optional  # noqa: UP035  (what users write)

import pytest

import coldsnap
from coldsnap.batching import BatchedAnnotationWarning, takes_lists
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions


def test_under_app_function_sets_the_batch_options_and_input_slots() -> None:
    app = coldsnap.App("bat-f")

    @app.function(timeout=30)
    @coldsnap.batched(max_batch_size=4, wait_ms=1000)
    def add(xs: list[int], ys: list[int]) -> list[int]:
        return [x + y for x, y in zip(xs, ys, strict=True)]

    assert add.options is not None
    assert (add.options.batch_max_size, add.options.batch_wait_ms) == (4, 1000)
    assert add.options.input_slots == 4 and add.options.target_inputs_per_container == 4
    assert add.local([1, 2], [3, 4]) == [4, 6]  # the function itself is untouched
    data = add.options.to_dict()
    assert FunctionOptions.from_dict(data) == add.options


def test_without_it_the_options_dict_has_no_batch_fields() -> None:
    app = coldsnap.App("bat-none")

    @app.function()
    def f(x: int) -> int:
        return x

    assert f.options is not None and "batch_max_size" not in f.options.to_dict()
    assert f.options.input_slots == 1


def test_on_a_class_method_in_place_of_method() -> None:
    app = coldsnap.App("bat-cls")

    @app.cls()
    class Converter:
        @coldsnap.batched(max_batch_size=3, wait_ms=0)
        async def to_codes(self, chars: list[str]) -> list[int]:
            return [ord(c) for c in chars]

    assert Converter.options is not None
    assert (Converter.options.batch_max_size, Converter.options.batch_wait_ms) == (3, 0)
    assert Converter.method_names == ["to_codes"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_batch_size": 0, "wait_ms": 10}, "max_batch_size must be an integer from 1 to 999"),
    ({"max_batch_size": 1000, "wait_ms": 10}, "max_batch_size must be an integer from 1 to 999"),
    ({"max_batch_size": 4, "wait_ms": -1}, "wait_ms must be an integer number of milliseconds"),
    ({"max_batch_size": 4, "wait_ms": 600_000}, "under 10 minutes"),
    ({"max_batch_size": 4}, "needs both max_batch_size=N"),
])
def test_bounds_are_modals(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        coldsnap.batched(**kwargs)


def test_misuse_is_refused_at_decoration() -> None:
    app = coldsnap.App("bat-misuse")
    with pytest.raises(InvalidError, match="without parentheses"):
        @coldsnap.batched  # type: ignore[arg-type]
        def bare(xs: list[int]) -> list[int]: ...
    with pytest.raises(InvalidError, match="can't batch the generator"):
        @coldsnap.batched(max_batch_size=2, wait_ms=1)
        def gen(xs: list[int]) -> Any:
            yield from xs
    with pytest.raises(InvalidError, match="takes at least one parameter"):
        @coldsnap.batched(max_batch_size=2, wait_ms=1)
        def nothing() -> list[int]: ...
    with pytest.raises(InvalidError, match=r"\*rest can't be batched"):
        @coldsnap.batched(max_batch_size=2, wait_ms=1)
        def variadic(xs: list[int], *rest: Any) -> list[int]: ...
    with pytest.raises(InvalidError, match="swap the two decorators"):
        @coldsnap.batched(max_batch_size=2, wait_ms=1)
        @app.function()
        def above(xs: list[int]) -> list[int]: ...
    with pytest.raises(InvalidError, match="does not take batch_max_size"):
        app.function(batch_max_size=4)


def test_with_concurrent_is_refused_either_way() -> None:
    app = coldsnap.App("bat-conc")
    with pytest.raises(InvalidError, match="cannot be combined with @coldsnap.concurrent"):
        @app.function()
        @coldsnap.concurrent(max_inputs=4)
        @coldsnap.batched(max_batch_size=2, wait_ms=1)
        def under(xs: list[int]) -> list[int]: ...
    with pytest.raises(InvalidError, match="cannot be combined with @coldsnap.concurrent"):
        @coldsnap.concurrent(max_inputs=4)
        @app.function()
        @coldsnap.batched(max_batch_size=2, wait_ms=1)
        def over(xs: list[int]) -> list[int]: ...


def test_a_batched_class_has_one_method() -> None:
    app = coldsnap.App("bat-cls-rules")
    with pytest.raises(InvalidError, match=r"batched method \(run\) and other methods "
                                           r"\(other\)"):
        @app.cls()
        class Mixed:
            @coldsnap.batched(max_batch_size=2, wait_ms=1)
            def run(self, xs: list[int]) -> list[int]: ...

            @coldsnap.method()
            def other(self) -> None: ...
    with pytest.raises(InvalidError, match="more than one @coldsnap.batched method"):
        @app.cls()
        class Two:
            @coldsnap.batched(max_batch_size=2, wait_ms=1)
            def a(self, xs: list[int]) -> list[int]: ...

            @coldsnap.batched(max_batch_size=2, wait_ms=1)
            def b(self, xs: list[int]) -> list[int]: ...


def test_a_parameter_annotated_with_one_value_is_warned_of() -> None:
    """Each parameter gets a list of the callers' values: ``x: int`` would likely fail at
    the first call (``x + 1`` on a list), so the decorator says why, as a warning: Modal
    runs such a function, and a ported app must run here too."""
    batched = coldsnap.batched(max_batch_size=4, wait_ms=100)
    why = r"can't hold a batch; under @coldsnap.batched each parameter receives a list"
    with pytest.warns(BatchedAnnotationWarning, match=r"on .*scalar: x: int " + why) as seen:
        @batched
        def scalar(x: int) -> int: ...
    assert seen[0].filename == __file__  # points at the user's decorator line
    with pytest.warns(BatchedAnnotationWarning, match=r"mixed: label: str " + why):
        @batched
        def mixed(xs: list[int], label: str) -> list[int]: ...
    with pytest.warns(BatchedAnnotationWarning,
                      match=r"optional: x: typing.Optional\[int\] " + why):
        @batched
        def optional(x: Optional[int]) -> list[int]: ...  # noqa: UP045
    assert not takes_lists(scalar) and takes_lists(lambda xs: xs) is False
    assert takes_lists(_listed)


def _listed(xs: list[int], names: Sequence[str]) -> list[int]:
    return xs


def test_list_like_and_unannotated_parameters_are_accepted() -> None:
    class Local:  # a name get_type_hints can't resolve: each annotation alone
        pass

    app = coldsnap.App("bat-annotations")

    @app.function()
    @coldsnap.batched(max_batch_size=4, wait_ms=100)
    def f(a: list[int], b: List[str], c: Sequence[float], d: Any, e,  # noqa: UP006
          g: list | None = None,
          h: Iterable[Local] = ()) -> list[int]:
        return a

    assert f.options is not None and f.options.batch_max_size == 4
