"""Lifecycle and method markers: ``enter``, ``method``, ``build``, ``exit``.

The decorators are passive: each wraps the function in a ``_PartialFunction``
carrying one ``_PartialFlag`` and changes nothing else. ``@app.cls`` and the
container runtime find the markers by walking the class's MRO (base classes
first, definition order), so the order of a class body is the order hooks run.

Example::

    @app.cls(enable_memory_snapshot=True)
    class Embedder:
        @coldsnap.enter(snap=True)
        def load(self): ...

        @coldsnap.method()
        def run(self, x): ...
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar, overload

from coldsnap.wire.errors import InvalidError

F = TypeVar("F", bound=Callable[..., Any])


class _PartialFlag(enum.IntFlag):
    ENTER_PRE_SNAPSHOT = 1
    ENTER_POST_SNAPSHOT = 2
    EXIT = 4
    BUILD = 8
    METHOD = 16

    @classmethod
    def lifecycle(cls) -> _PartialFlag:
        return cls.ENTER_PRE_SNAPSHOT | cls.ENTER_POST_SNAPSHOT | cls.EXIT | cls.BUILD


_DECORATOR_NAMES = {
    _PartialFlag.ENTER_PRE_SNAPSHOT: "@coldsnap.enter(snap=True)",
    _PartialFlag.ENTER_POST_SNAPSHOT: "@coldsnap.enter()",
    _PartialFlag.EXIT: "@coldsnap.exit()",
    _PartialFlag.BUILD: "@coldsnap.build()",
    _PartialFlag.METHOD: "@coldsnap.method()",
}


def decorator_name(flag: _PartialFlag) -> str:
    """How the user wrote the marker(s) behind ``flag``, for error messages."""
    return " and ".join(name for f, name in _DECORATOR_NAMES.items() if f in flag)


class _PartialFunction:
    """A class attribute marked by one or more of the decorators in this module.

    Accessed through an instance it is the plain bound method, so user code can
    call ``self.load()`` or ``self.run(x)`` as if no decorator were there.
    """

    def __init__(self, raw_f: Callable[..., Any], flags: _PartialFlag) -> None:
        self.raw_f = raw_f
        self.flags = flags
        self.__name__ = getattr(raw_f, "__name__", "<function>")
        self.__qualname__ = getattr(raw_f, "__qualname__", self.__name__)
        self.__doc__ = raw_f.__doc__

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _PartialFunction: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> Callable[..., Any]: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return self.raw_f.__get__(obj, objtype)

    def __repr__(self) -> str:
        return f"<{decorator_name(self.flags)} {self.__qualname__}>"


def _mark(flag: _PartialFlag, f: Any) -> Any:
    if isinstance(f, _PartialFunction):
        combined = f.flags | flag
        if _PartialFlag.METHOD in combined and combined & _PartialFlag.lifecycle():
            raise InvalidError(
                f"{f.__qualname__} is marked both {decorator_name(combined)}: a function is "
                "either a method callers invoke or a lifecycle hook, not both. Move the shared "
                "code into a helper and call it from two functions."
            )
        return _PartialFunction(f.raw_f, combined)
    if not callable(f) or isinstance(f, type):
        raise InvalidError(
            f"{decorator_name(flag)} must decorate a function defined in a class body, "
            f"not {f!r}."
        )
    if _is_module_level(f):
        raise InvalidError(
            f"{decorator_name(flag)} was applied to the plain function "
            f"{getattr(f, '__qualname__', f)!r}: it only works on methods of a class "
            "decorated with @app.cls(). Move the function into that class, or drop the "
            "decorator and use @app.function() for a plain function."
        )
    return _PartialFunction(f, flag)


def _is_module_level(f: Any) -> bool:
    """True when ``f`` was not defined in a class body (module or function scope)."""
    if type(f).__name__ in ("Function", "Cls"):  # an @app.function / @app.cls handle
        return True
    qualname = getattr(f, "__qualname__", "")
    parts = qualname.split(".")
    return len(parts) < 2 or parts[-2] == "<locals>"


def no_parentheses(decorator: str, arg: object) -> InvalidError:
    """The error for ``@decorator`` written where ``@decorator()`` was meant."""
    name = getattr(arg, "__qualname__", repr(arg))
    return InvalidError(
        f"{decorator} was used without parentheses on {name}. Write {decorator}() "
        f"(with parentheses): the decorator takes options and must be called."
    )


def enter(
    _warn_parentheses_missing: object = None, *, snap: bool = False
) -> Callable[[F], F]:
    """Mark a method to run when a container starts.

    ``snap=True`` runs it once per version before the memory snapshot (needs
    ``@app.cls(enable_memory_snapshot=True)``); the default runs it on every cold
    boot, after restore, with GPUs and network available.
    """
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.enter", _warn_parentheses_missing)
    if not isinstance(snap, bool):
        raise InvalidError(f"@coldsnap.enter(snap=...) takes True or False, not {snap!r}.")
    flag = _PartialFlag.ENTER_PRE_SNAPSHOT if snap else _PartialFlag.ENTER_POST_SNAPSHOT
    return lambda f: _mark(flag, f)


def method(_warn_parentheses_missing: object = None) -> Callable[[F], F]:
    """Mark a method callers can invoke with ``.remote()``, ``.map()``, ``.spawn()``."""
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.method", _warn_parentheses_missing)
    return lambda f: _mark(_PartialFlag.METHOD, f)


def build(_warn_parentheses_missing: object = None) -> Callable[[F], F]:
    """Mark a method to run at image build time; what it writes lands in the image."""
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.build", _warn_parentheses_missing)
    return lambda f: _mark(_PartialFlag.BUILD, f)


def exit(_warn_parentheses_missing: object = None) -> Callable[[F], F]:
    """Mark a method to run when the container shuts down (scale-down, SIGTERM)."""
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.exit", _warn_parentheses_missing)
    return lambda f: _mark(_PartialFlag.EXIT, f)


def find_partials(user_cls: type, flag: _PartialFlag) -> dict[str, _PartialFunction]:
    """Marked attributes of ``user_cls`` carrying ``flag``: base classes first, then
    definition order; a subclass attribute overrides (or unmarks) its base's."""
    found: dict[str, _PartialFunction] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, _PartialFunction):
                found[name] = value
            else:
                found.pop(name, None)
    return {name: p for name, p in found.items() if p.flags & flag}
