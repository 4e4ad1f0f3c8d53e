"""``@coldsnap.concurrent``: its settings reach the function's options, either way it is
stacked, and misuse fails at decoration with a message naming the decorator and the fix."""

from __future__ import annotations

from typing import Any

import pytest

import coldsnap
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions


def test_under_app_function_sets_max_and_target_inputs() -> None:
    app = coldsnap.App("conc-f")

    @app.function()
    @coldsnap.concurrent(max_inputs=8, target_inputs=4)
    def f(x: int) -> int:
        return x

    assert f.options is not None
    assert (f.options.max_inputs, f.options.target_inputs) == (8, 4)
    assert f.options.target_inputs_per_container == 4
    assert f.local(3) == 3  # the function itself is untouched


def test_above_app_function_and_on_a_class_either_way() -> None:
    app = coldsnap.App("conc-order")

    @coldsnap.concurrent(max_inputs=3)
    @app.function(timeout=5)
    def f() -> None: ...

    @app.cls(enable_memory_snapshot=True)
    @coldsnap.concurrent(max_inputs=5)
    class Model:
        @coldsnap.method()
        def run(self) -> None: ...

    @coldsnap.concurrent(max_inputs=2, target_inputs=1)
    @app.cls()
    class Other:
        @coldsnap.method()
        def run(self) -> None: ...

    assert f.options is not None and Model.options is not None and Other.options is not None
    assert (f.options.max_inputs, f.options.timeout) == (3, 5)
    assert (Model.options.max_inputs, Model.options.enable_memory_snapshot) == (5, True)
    assert (Other.options.max_inputs, Other.options.target_inputs) == (2, 1)


def test_without_it_one_input_at_a_time_and_options_round_trip() -> None:
    app = coldsnap.App("conc-default")

    @app.function()
    def g() -> None: ...

    assert g.options is not None and g.options.max_inputs == 1
    opts = FunctionOptions.create("@app.function()", max_inputs=4, target_inputs=2)
    assert FunctionOptions.from_dict(opts.to_dict()) == opts


def test_missing_parentheses_names_the_fix() -> None:
    with pytest.raises(InvalidError, match=r"@coldsnap.concurrent was used without "
                       r"parentheses on .*h\. Write @coldsnap.concurrent\(max_inputs=N\)"):
        @coldsnap.concurrent  # type: ignore[arg-type]
        def h() -> None: ...


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, "@coldsnap.concurrent() needs max_inputs=N"),
    ({"max_inputs": 0}, "max_inputs must be an integer from 1 to 1000, not 0"),
    ({"max_inputs": 2.5}, "max_inputs must be an integer from 1 to 1000, not 2.5"),
    ({"max_inputs": True}, "max_inputs must be an integer from 1 to 1000, not True"),
    ({"max_inputs": "4"}, "max_inputs must be an integer from 1 to 1000, not '4'"),
    ({"max_inputs": 4, "target_inputs": 0}, "target_inputs must be an integer >= 1 or None"),
    ({"max_inputs": 4, "target_inputs": 5},
     "target_inputs (5) is above max_inputs (4): the autoscaler aims for target_inputs "
     "per container and lets one burst up to max_inputs; lower target_inputs or raise "
     "max_inputs"),
])
def test_bad_values_are_refused_at_decoration(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidError) as info:
        coldsnap.concurrent(**kwargs)
    assert expected in str(info.value)
    assert str(info.value).startswith("@coldsnap.concurrent()")


def test_on_a_method_it_belongs_on_the_class() -> None:
    app = coldsnap.App("conc-method")
    with pytest.raises(InvalidError, match=r"applied to the method Model.run: put it on the "
                       r"class instead \(under @app.cls\(\)\)"):
        @app.cls()
        class Model:
            @coldsnap.method()
            @coldsnap.concurrent(max_inputs=2)
            def run(self) -> None: ...

    with pytest.raises(InvalidError, match=r"applied to the method .*Model2.run: put it on"):
        class Model2:
            @coldsnap.concurrent(max_inputs=2)
            @coldsnap.method()
            def run(self) -> None: ...


def test_twice_and_as_a_function_option_are_refused() -> None:
    with pytest.raises(InvalidError, match="was applied twice to .*f; keep one"):
        @coldsnap.concurrent(max_inputs=2)
        @coldsnap.concurrent(max_inputs=3)
        def f() -> None: ...

    app = coldsnap.App("conc-option")
    for keyword in ("max_inputs", "allow_concurrent_inputs"):
        with pytest.raises(InvalidError, match=(
                f"@app.function\\(\\) does not take {keyword}: input concurrency is set with "
                r"@coldsnap.concurrent\(max_inputs=N, target_inputs=None\)")):
            app.function(**{keyword: 4})


def test_cls_with_concurrency_overrides_the_settings_of_calls_through_it() -> None:
    Model = coldsnap.Cls.from_name("some-app", "Model")
    faster = Model.with_concurrency(max_inputs=16, target_inputs=8)
    assert faster is not Model and faster.tag == "Model"
    options = {"max_inputs": 16, "target_inputs": 8}
    assert faster().generate._variant == {"params": {}, "options": options}  # sent per call
    assert Model().generate._variant is None  # the original is untouched
    with pytest.raises(InvalidError, match=r"^Model.with_concurrency\(\): target_inputs \(9\) "
                       r"is above max_inputs \(4\)"):
        Model.with_concurrency(max_inputs=4, target_inputs=9)
    with pytest.raises(InvalidError, match=r"max_inputs must be an integer from 1 to 1000"):
        Model.with_concurrency(max_inputs=0)


def test_with_a_web_decorator_either_way_round() -> None:
    app = coldsnap.App("conc-web")

    @app.function()
    @coldsnap.concurrent(max_inputs=6)
    @coldsnap.fastapi_endpoint()
    def above() -> str:
        return "hi"

    @app.function()
    @coldsnap.fastapi_endpoint()
    @coldsnap.concurrent(max_inputs=7)
    def below() -> str:
        return "hi"

    assert above.options is not None and below.options is not None
    assert (above.options.max_inputs, below.options.max_inputs) == (6, 7)
    assert above.web and below.web  # still web endpoints
