"""``coldsnap.parameter()``: a class's parameters, set per instance (Modal's
``modal.parameter``)::

    @app.cls()
    class Greeter:
        name: str = coldsnap.parameter()
        times: int = coldsnap.parameter(default=1)

        @coldsnap.method()
        def greet(self) -> str:
            return f"hello {self.name}" * self.times

    Greeter(name="ada", times=2).greet.remote()

Each distinct set of values gets containers (and a snapshot) of its own; the values
are set on the instance before its ``@enter`` hooks run. Types: int, str, bool, bytes.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from coldsnap.wire.errors import InvalidError
from coldsnap.wire.variant import PARAM_TYPES

_MISSING: Any = object()


@dataclasses.dataclass(frozen=True)
class Parameter:
    """What ``parameter()`` leaves in the class body until the class is instantiated."""

    default: Any = _MISSING
    init: bool = True

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def parameter(*, default: Any = _MISSING, init: bool = True) -> Any:
    """Declare a class parameter (annotate it: ``x: int = coldsnap.parameter()``)."""
    if default is not _MISSING and not isinstance(default, PARAM_TYPES):
        raise InvalidError(f"coldsnap.parameter(default={default!r}): a parameter's default "
                           "must be an int, str, bool or bytes")
    return Parameter(default, init)


def class_parameters(user_cls: type) -> dict[str, tuple[type, Parameter]]:
    """The class's parameters: name -> (annotated type, Parameter); InvalidError for one
    without a supported annotation."""
    found: dict[str, tuple[type, Parameter]] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[name] = (_annotation(user_cls, name), value)
    return found


def _annotation(user_cls: type, name: str) -> type:
    try:
        hints = typing.get_type_hints(user_cls)
    except Exception:  # a forward reference the client can't resolve
        hints = {}
    kind = hints.get(name)
    if kind not in PARAM_TYPES:
        raise InvalidError(
            f"{user_cls.__name__}.{name} = coldsnap.parameter(): annotate it with its type, "
            f"one of int, str, bool, bytes (e.g. `{name}: int = coldsnap.parameter()`), "
            f"not {getattr(kind, '__name__', kind)!r}")
    return typing.cast(type, kind)


def bind_parameters(user_cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's value for ``Cls(**values)``, defaults filled in; InvalidError
    naming unknown, missing or mistyped ones."""
    declared = class_parameters(user_cls)
    label = user_cls.__name__
    unknown = sorted(set(values) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none: declare them with `x: int = coldsnap.parameter()`"
        raise InvalidError(f"{label}() got unknown parameter(s) {', '.join(unknown)}; its "
                           f"parameters are: {known}")
    bound: dict[str, Any] = {}
    for name, (kind, spec) in declared.items():
        if name not in values:
            if spec.required:
                raise InvalidError(f"{label}() needs the parameter {name!r} ({kind.__name__}): "
                                   f"{label}({name}=...)")
            bound[name] = spec.default
            continue
        value = values[name]
        if type(value) is not kind:  # exact: True is no int parameter
            raise InvalidError(f"{label}() parameter {name!r} is a {kind.__name__}, not "
                               f"{type(value).__name__} ({value!r})")
        bound[name] = value
    return bound


def apply_parameters(instance: object, values: dict[str, Any]) -> None:
    """Set each parameter on a fresh instance (before its enter hooks run)."""
    for name, value in values.items():
        setattr(instance, name, value)
