"""``@coldsnap.batched``: dynamic batching (Modal's names and rules).

Example::

    @app.function()
    @coldsnap.batched(max_batch_size=4, wait_ms=1000)
    async def add(xs: list[int], ys: list[int]) -> list[int]:
        return [x + y for x, y in zip(xs, ys)]

    add.remote(1, 2)  # callers pass single values and get their own element back

The function takes a list per parameter and returns a list as long. Its container
holds up to ``max_batch_size`` inputs at once; the runtime (``_runtime/batcher.py``)
groups them, waiting at most ``wait_ms`` after the first for more, and calls the
function once per group. On a class, put it on one method instead of
``@coldsnap.method()``: such a class has that method and no other. The settings travel
in ``FunctionOptions`` (``batch_max_size``, ``batch_wait_ms``).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from coldsnap.handles import Cls, Function
from coldsnap.markers import MarkedFunction, MarkerFlag, find_partials
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions, batch_problems

T = TypeVar("T")

DECORATOR = "@coldsnap.batched"
# Where the settings wait on a plain function until @app.function reads them.
_ATTRIBUTE = "__coldsnap_batched__"


@dataclasses.dataclass(frozen=True)
class Batching:
    max_batch_size: int
    wait_ms: int


def batched(_warn_parentheses_missing: object = None, *,
            max_batch_size: int | None = None, wait_ms: int | None = None
            ) -> Callable[[T], T]:
    """Group up to ``max_batch_size`` inputs, waiting at most ``wait_ms`` milliseconds
    after the first for more, into one call of the function with lists.

    Stack it under ``@app.function()``, or on a method of an ``@app.cls()`` class in
    place of ``@coldsnap.method()``::

        @app.cls()
        class Embedder:
            @coldsnap.batched(max_batch_size=32, wait_ms=50)
            def embed(self, texts: list[str]) -> list[list[float]]: ...
    """
    if _warn_parentheses_missing is not None:
        raise InvalidError(
            f"{DECORATOR} was used without parentheses on "
            f"{getattr(_warn_parentheses_missing, '__qualname__', _warn_parentheses_missing)}."
            f" Write {DECORATOR}(max_batch_size=N, wait_ms=MS).")
    if max_batch_size is None or wait_ms is None:
        raise InvalidError(f"{DECORATOR}() needs both max_batch_size=N (the most inputs in "
                           "one batch) and wait_ms=MS (how long a batch waits for more), "
                           f"e.g. {DECORATOR}(max_batch_size=8, wait_ms=100).")
    problems = list(batch_problems(max_batch_size, wait_ms))
    if problems:
        raise InvalidError(f"{DECORATOR}(): " + "; ".join(problems) + ".")
    settings = Batching(max_batch_size, wait_ms)
    return lambda target: _apply(settings, target)


def _apply(settings: Batching, target: Any) -> Any:
    if getattr(target, "web", None) is not None and not isinstance(target, Function | Cls):
        raise InvalidError(
            f"{DECORATOR} can't go with @coldsnap.{target.web.kind}(): a web endpoint takes "
            "one HTTP request at a time, not batches of inputs. Batch a function the "
            "endpoint calls instead.")
    if isinstance(target, Function | Cls):
        raise InvalidError(
            f"{DECORATOR} can't be stacked on top of @app.function() or @app.cls(): swap "
            f"the two decorators (@app.function() goes above {DECORATOR}).")
    raw = target.raw_f if isinstance(target, MarkedFunction) else target
    if isinstance(raw, type) or not callable(raw):
        raise InvalidError(f"{DECORATOR} decorates a function or a method, not {raw!r}; on "
                           "a class, put it on the method to batch.")
    name = getattr(raw, "__qualname__", repr(raw))
    if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
        raise InvalidError(f"{DECORATOR} can't batch the generator {name}: a batched "
                           "function returns one list with an element per input; return a "
                           "list instead of yielding.")
    _check_parameters(raw, name, method=_in_class_body(raw))
    if getattr(raw, _ATTRIBUTE, None) is not None:
        raise InvalidError(f"{DECORATOR} was applied twice to {name}; keep one.")
    setattr(raw, _ATTRIBUTE, settings)
    if isinstance(target, MarkedFunction):  # under @coldsnap.method(): it is one already
        return target
    if _in_class_body(raw):
        return MarkedFunction(raw, MarkerFlag.METHOD)
    return raw


def _check_parameters(f: Callable[..., Any], name: str, method: bool) -> None:
    """Each parameter gets a list, one element per input: it needs one, and no
    ``*args``/``**kwargs``."""
    parameters = list(inspect.signature(f).parameters.values())[1 if method else 0:]
    if not parameters:
        raise InvalidError(f"{DECORATOR} on {name}: a batched function takes at least one "
                           "parameter, the list of its inputs' values.")
    variadic = [p.name for p in parameters
                if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if variadic:
        raise InvalidError(f"{DECORATOR} on {name}: *{variadic[0]} can't be batched; each "
                           "parameter of a batched function takes a list with one element "
                           "per input, so name every parameter.")
    misfits = [f"{p.name}: {_spelled(annotation)}" for p, annotation
               in zip(parameters, _annotations(f, parameters), strict=True)
               if not _takes_a_list(annotation)]
    if misfits:  # a warning, not a refusal: Modal runs such a function (and so do we)
        warnings.warn(
            f"{DECORATOR} on {name}: {', '.join(misfits)} can't hold a batch; under "
            f"{DECORATOR} each parameter receives a list of the callers' values (one "
            "element per input) and the function returns a list as long. Annotate the "
            "parameters as lists (xs: list[int]); callers still pass single values.",
            BatchedAnnotationWarning, stacklevel=4)


class BatchedAnnotationWarning(UserWarning):
    """A batched function's parameter is annotated with a type a list is not."""


def takes_lists(f: Callable[..., Any]) -> bool:
    """Whether every parameter of ``f`` says it takes a list (the runtime adds a note to
    a TypeError of one that doesn't)."""
    parameters = [p for p in inspect.signature(f).parameters.values() if p.name != "self"]
    return all(annotation not in (inspect.Parameter.empty, Any) and _takes_a_list(annotation)
               for annotation in _annotations(f, parameters))


def _annotations(f: Callable[..., Any], parameters: list[inspect.Parameter]) -> list[Any]:
    """Each parameter's annotation, resolved where it can be (a string one, under
    ``from __future__ import annotations``); ``Any`` where it can't."""
    try:
        hints = typing.get_type_hints(f)
    except Exception:  # a name only the function's caller knows: try each alone
        hints = {}
    found = []
    for parameter in parameters:
        annotation = hints.get(parameter.name, parameter.annotation)
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(getattr(f, "__globals__", {})))
            except Exception:
                annotation = Any
        found.append(annotation)
    return found


def _takes_a_list(annotation: Any) -> bool:
    """Whether a list fits ``annotation`` (list[int], Sequence, Iterable, none, Any);
    True where that can't be told (a TypeVar, a Literal)."""
    if annotation in (inspect.Parameter.empty, Any):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_takes_a_list(arg) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _takes_a_list(typing.get_args(annotation)[0])
    kind = origin or annotation
    if annotation is None or not isinstance(kind, type):
        return annotation is not None
    try:
        return issubclass(list, kind)
    except TypeError:  # a protocol issubclass can't check
        return True


def _spelled(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _in_class_body(f: Any) -> bool:
    parts = getattr(f, "__qualname__", "").split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"


def take_settings(target: object) -> Batching | None:
    """What ``@coldsnap.batched`` left on a function, for ``@app.function``."""
    return getattr(target, _ATTRIBUTE, None)


def with_settings(options: FunctionOptions, settings: Batching | None,
                  where: str) -> FunctionOptions:
    """``options`` with the batch settings; InvalidError naming ``where`` if they clash
    (with ``@coldsnap.concurrent``)."""
    if settings is None:
        return options
    batched_options = dataclasses.replace(options, batch_max_size=settings.max_batch_size,
                                          batch_wait_ms=settings.wait_ms)
    batched_options.validate(where)
    return batched_options


def class_settings(user_cls: type) -> Batching | None:
    """The batch settings of a class's batched method, or None; refuses Modal's
    misuses: more than one batched method, or a batched method beside others."""
    methods = find_partials(user_cls, MarkerFlag.METHOD)
    batched_methods = {name: take_settings(m.raw_f) for name, m in methods.items()
                       if take_settings(m.raw_f) is not None}
    if not batched_methods:
        return None
    cls_name = user_cls.__name__
    if len(batched_methods) > 1:
        raise InvalidError(
            f"@app.cls(): class {cls_name} has more than one {DECORATOR} method "
            f"({', '.join(batched_methods)}); a class can have one. Move the others to "
            "classes of their own.")
    others = [name for name in methods if name not in batched_methods]
    if others:
        raise InvalidError(
            f"@app.cls(): class {cls_name} has a {DECORATOR} method "
            f"({next(iter(batched_methods))}) and other methods ({', '.join(others)}); a "
            "class with a batched method can have no other method. Move them to another "
            "class.")
    return next(iter(batched_methods.values()))


def refuse_as_option(decorator: str, options: dict[str, Any]) -> None:
    """The batch settings belong to ``@coldsnap.batched``, not to the function decorator."""
    given = sorted({"batch_max_size", "batch_wait_ms"} & set(options))
    if given:
        raise InvalidError(
            f"{decorator} does not take {', '.join(given)}: batching is set with "
            f"{DECORATOR}(max_batch_size=N, wait_ms=MS), stacked under {decorator}.")
