"""``@coldsnap.concurrent``: several inputs at once in one container (Modal's names).

Example::

    @app.function()
    @coldsnap.concurrent(max_inputs=20, target_inputs=10)
    async def fetch(url: str) -> int:
        ...

Sync functions run their inputs on threads (the code must be thread-safe); async
functions run them as tasks on one event loop. On a class, put it on the class (under
``@app.cls()``): every method shares the container's slots. The settings travel in
``FunctionOptions`` (``max_inputs``, ``target_inputs``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from coldsnap.handles import Cls, Function
from coldsnap.markers import MarkedFunction
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions, concurrency_problems

T = TypeVar("T")

DECORATOR = "@coldsnap.concurrent"
# Where the settings wait on a function or class until @app.function/@app.cls reads them.
_ATTRIBUTE = "__coldsnap_concurrent__"


@dataclasses.dataclass(frozen=True)
class Concurrency:
    max_inputs: int
    target_inputs: int | None = None


def concurrent(
    _warn_parentheses_missing: object = None, *,
    max_inputs: int | None = None, target_inputs: int | None = None,
) -> Callable[[T], T]:
    """Let one container run up to ``max_inputs`` inputs at once; the autoscaler aims for
    ``target_inputs`` per container (default: ``max_inputs``) and lets one burst to
    ``max_inputs`` while more containers boot.

    Stack it under ``@app.function()`` or ``@app.cls()`` (above works too)::

        @app.cls(enable_memory_snapshot=True)
        @coldsnap.concurrent(max_inputs=8)
        class Model: ...
    """
    if _warn_parentheses_missing is not None:
        raise InvalidError(
            f"{DECORATOR} was used without parentheses on "
            f"{getattr(_warn_parentheses_missing, '__qualname__', _warn_parentheses_missing)}."
            f" Write {DECORATOR}(max_inputs=N): it needs the number of inputs a container "
            "may run at once.")
    settings = checked(max_inputs, target_inputs)
    return lambda target: _apply(settings, target)


def checked(max_inputs: object, target_inputs: object,
            where: str = DECORATOR) -> Concurrency:
    """The settings, or InvalidError naming ``where`` and the fix."""
    if max_inputs is None:
        raise InvalidError(f"{where}() needs max_inputs=N, the number of inputs one "
                           "container may run at once, e.g. max_inputs=10.")
    problems = list(concurrency_problems(max_inputs, target_inputs))
    if problems:
        raise InvalidError(f"{where}(): " + "; ".join(problems) + ".")
    return Concurrency(max_inputs, target_inputs)  # type: ignore[arg-type]


def _apply(settings: Concurrency, target: Any) -> Any:
    if isinstance(target, Function | Cls):  # stacked above @app.function/@app.cls
        assert target.options is not None
        target.options = with_settings(target.options, settings)
        return target
    if isinstance(target, MarkedFunction):
        raise InvalidError(
            f"{DECORATOR} was applied to the method {target.__qualname__}: put it on the "
            "class instead (under @app.cls()); every method of the class shares the "
            "container's input slots.")
    if not callable(target):
        raise InvalidError(f"{DECORATOR} decorates a function or a class, not {target!r}.")
    if getattr(target, _ATTRIBUTE, None) is not None and _ATTRIBUTE in vars(target):
        raise InvalidError(f"{DECORATOR} was applied twice to "
                           f"{target.__qualname__}; keep one.")
    setattr(target, _ATTRIBUTE, settings)
    return target


def with_settings(options: FunctionOptions, settings: Concurrency) -> FunctionOptions:
    return options.with_concurrency(settings.max_inputs, settings.target_inputs)


def take_settings(target: object) -> Concurrency | None:
    """What ``@coldsnap.concurrent`` left on a function or class (its own, not a base
    class's), for ``@app.function``/``@app.cls``."""
    if isinstance(target, type):
        return vars(target).get(_ATTRIBUTE)  # type: ignore[no-any-return]
    return getattr(target, _ATTRIBUTE, None)


def refuse_in_class_body(user_cls: type) -> None:
    """``@coldsnap.concurrent`` on a method of a class goes on the class instead."""
    for name, value in vars(user_cls).items():
        raw = value.raw_f if isinstance(value, MarkedFunction) else value
        if callable(raw) and not isinstance(raw, type) and take_settings(raw) is not None:
            raise InvalidError(
                f"{DECORATOR} was applied to the method {user_cls.__name__}.{name}: put it "
                f"on the class instead (under @app.cls()); every method of "
                f"{user_cls.__name__} shares the container's input slots.")


def refuse_as_option(decorator: str, options: dict[str, Any]) -> None:
    """``max_inputs=`` and Modal's old ``allow_concurrent_inputs=`` belong to
    ``@coldsnap.concurrent``, not to the function decorator."""
    given = sorted({"max_inputs", "target_inputs", "allow_concurrent_inputs"} & set(options))
    if given:
        raise InvalidError(
            f"{decorator} does not take {', '.join(given)}: input concurrency is set with "
            f"{DECORATOR}(max_inputs=N, target_inputs=None), stacked under {decorator}.")
