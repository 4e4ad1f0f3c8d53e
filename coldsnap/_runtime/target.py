"""What a container serves: one function, or one instance of one class."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from coldsnap.handles import Cls, Function
from coldsnap.markers import MarkerFlag, find_partials
from coldsnap.parameter import apply_parameters, bind_parameters

Hook = tuple[str, Callable[[], Any]]  # (label for messages, bound method)

_HOOK_LABELS = {
    MarkerFlag.ENTER_PRE_SNAPSHOT: "enter(snap=True) hook",
    MarkerFlag.ENTER_POST_SNAPSHOT: "enter(snap=False) hook",
    MarkerFlag.EXIT: "exit hook",
    MarkerFlag.BUILD: "build hook",
}


class Target:
    """The function or class a container serves: its handle, the app file's module,
    and for a class the one instance whose hooks and methods run."""

    def __init__(
        self, handle: Function[..., Any] | Cls[Any], module: ModuleType | None = None
    ) -> None:
        self.handle = handle
        self.tag = handle.tag
        self.instance: Any = None
        self.module = module  # the app file's module

    def alias_module(self, name: str) -> None:
        """Answer to ``name`` too: a caller imported the app file under that name,
        and its arguments refer to the app's classes by it."""
        if self.module is not None and name not in sys.modules:
            sys.modules[name] = self.module

    def caller_shares_module(self, name: str | None) -> bool:
        """True when the caller imported the app file under our module's name: then
        the app's values go back by reference and are the caller's own classes."""
        return self.module is not None and name == self.module.__name__

    def instantiate(self, params: dict[str, Any] | None = None) -> None:
        """Create the class instance with its parameters (a no-op for a function)."""
        if isinstance(self.handle, Cls):
            user_cls = self.handle.user_cls
            assert user_cls is not None
            values = bind_parameters(user_cls, params or {})  # InvalidError: boot fails
            self.instance = user_cls()
            apply_parameters(self.instance, values)

    def hooks(self, flag: MarkerFlag) -> list[Hook]:
        """Bound hooks carrying ``flag``, base classes first, in definition order."""
        if self.instance is None:
            return []
        user_cls = type(self.instance)
        return [
            (f"{_HOOK_LABELS[flag]} {user_cls.__name__}.{name}", getattr(self.instance, name))
            for name in find_partials(user_cls, flag)
        ]

    def callable_for(self, method: str | None) -> Callable[..., Any]:
        """What a ``call`` message runs; refuses anything but a ``@method()``."""
        if isinstance(self.handle, Function):
            assert self.handle.raw_f is not None
            if method is not None:
                raise LookupError(f"{self.tag} is a function: it has no method {method!r}")
            return self.handle.raw_f
        methods = find_partials(type(self.instance), MarkerFlag.METHOD)
        if method not in methods:
            raise LookupError(
                f"{self.tag} has no @coldsnap.method() named {method!r}; "
                f"its methods are: {', '.join(methods)}"
            )
        return getattr(self.instance, method)  # type: ignore[no-any-return]

