"""Lifecycle and method markers: ``enter``, ``method``, ``build``, ``exit``.

The decorators are passive: each wraps the function in a ``MarkedFunction``
carrying one ``MarkerFlag`` and changes nothing else. ``@app.cls`` and the
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


class MarkerFlag(enum.IntFlag):
    ENTER_PRE_SNAPSHOT = 1
    ENTER_POST_SNAPSHOT = 2
    EXIT = 4
    BUILD = 8
    METHOD = 16

    @classmethod
    def lifecycle(cls) -> MarkerFlag:
        return cls.ENTER_PRE_SNAPSHOT | cls.ENTER_POST_SNAPSHOT | cls.EXIT | cls.BUILD


_DECORATOR_NAMES = {
    MarkerFlag.ENTER_PRE_SNAPSHOT: "@coldsnap.enter(snap=True)",
    MarkerFlag.ENTER_POST_SNAPSHOT: "@coldsnap.enter()",
    MarkerFlag.EXIT: "@coldsnap.exit()",
    MarkerFlag.BUILD: "@coldsnap.build()",
    MarkerFlag.METHOD: "@coldsnap.method()",
}


def decorator_name(flag: MarkerFlag) -> str:
    """How the user wrote the marker(s) behind ``flag``, for error messages."""
    return " and ".join(name for f, name in _DECORATOR_NAMES.items() if f in flag)


class MarkedFunction:
    """A class attribute marked by one or more of the decorators in this module.

    Accessed through an instance it is the plain bound method, so user code can
    call ``self.load()`` or ``self.run(x)`` as if no decorator were there.
    """

    def __init__(self, raw_f: Callable[..., Any], flags: MarkerFlag) -> None:
        self.raw_f = raw_f
        self.flags = flags
        # A web decorator's declaration (coldsnap.web.WebDeclaration), if it has one.
        self.web: Any = None
        self.__name__ = getattr(raw_f, "__name__", "<function>")
        self.__qualname__ = getattr(raw_f, "__qualname__", self.__name__)
        self.__doc__ = raw_f.__doc__

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> MarkedFunction: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> Callable[..., Any]: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return self.raw_f.__get__(obj, objtype)

    def __repr__(self) -> str:
        return f"<{decorator_name(self.flags)} {self.__qualname__}>"


def _mark(flag: MarkerFlag, f: Any) -> Any:
    if isinstance(f, MarkedFunction):
        combined = f.flags | flag
        if MarkerFlag.METHOD in combined and combined & MarkerFlag.lifecycle():
            raise InvalidError(
                f"{f.__qualname__} is marked both {decorator_name(combined)}: a function is "
                "either a method callers invoke or a lifecycle hook, not both. Move the shared "
                "code into a helper and call it from two functions."
            )
        marked = MarkedFunction(f.raw_f, combined)
        marked.web = f.web
        return marked
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
    return MarkedFunction(f, flag)


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
    flag = MarkerFlag.ENTER_PRE_SNAPSHOT if snap else MarkerFlag.ENTER_POST_SNAPSHOT
    return lambda f: _mark(flag, f)


def method(_warn_parentheses_missing: object = None) -> Callable[[F], F]:
    """Mark a method callers can invoke with ``.remote()``, ``.map()``, ``.spawn()``."""
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.method", _warn_parentheses_missing)
    return lambda f: _mark(MarkerFlag.METHOD, f)


def build(_warn_parentheses_missing: object = None) -> Callable[[F], F]:
    """Mark a method to run at image build time; what it writes lands in the image."""
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.build", _warn_parentheses_missing)
    return lambda f: _mark(MarkerFlag.BUILD, f)


def exit(_warn_parentheses_missing: object = None) -> Callable[[F], F]:
    """Mark a method to run when the container shuts down (scale-down, SIGTERM)."""
    if _warn_parentheses_missing is not None:
        raise no_parentheses("@coldsnap.exit", _warn_parentheses_missing)
    return lambda f: _mark(MarkerFlag.EXIT, f)


def find_partials(user_cls: type, flag: MarkerFlag) -> dict[str, MarkedFunction]:
    """Marked attributes of ``user_cls`` carrying ``flag``: base classes first, then
    definition order; a subclass attribute overrides (or unmarks) its base's."""
    found: dict[str, MarkedFunction] = {}
    for klass in reversed(user_cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, MarkedFunction):
                found[name] = value
            else:
                found.pop(name, None)
    return {name: p for name, p in found.items() if p.flags & flag}
