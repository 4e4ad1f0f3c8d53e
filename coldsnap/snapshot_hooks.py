"""``coldsnap.before_snapshot`` and ``coldsnap.after_restore``: plain functions any
module registers, run by the container around a memory snapshot (docs/snapshot-hooks.md).

A library can close what a snapshot must not hold (a connection pool, a socket to a
database) and reopen it after each restore, without the app's class knowing:

    @coldsnap.before_snapshot
    def close_pool():
        POOL.close()

    @coldsnap.after_restore
    def reopen_pool():
        POOL.reopen()

Order (the runtime's lifecycle, steps 3-6): every ``enter(snap=True)`` hook, then the
``before_snapshot`` functions, last registered first (like ``atexit``: what was set
up last is torn down first), then the dump. After each restore: coldsnap's own
after-restore work (env, container id, RNG reseed), then the ``after_restore``
functions in the order they were registered, then the ``enter(snap=False)`` hooks.

Outside a container (and in a container that takes no snapshot) registering does
nothing else: the functions are kept and never run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from coldsnap.wire.errors import InvalidError

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_before: list[Callable[[], Any]] = []
_after: list[Callable[[], Any]] = []


def before_snapshot(func: F) -> F:
    """Run ``func()`` (no arguments; async allowed) once, just before the container's
    memory snapshot, after every ``enter(snap=True)`` hook; returns ``func``, so it
    works as a decorator and as a call. Runs last registered first.

        @coldsnap.before_snapshot
        def close_pool():
            POOL.close()
    """
    _register(_before, func, "before_snapshot")
    return func


def after_restore(func: F) -> F:
    """Run ``func()`` (no arguments; async allowed) in every container restored from a
    memory snapshot, before its ``enter(snap=False)`` hooks; returns ``func``. Runs in
    the order registered.

        @coldsnap.after_restore
        def reopen_pool():
            POOL.reopen()
    """
    _register(_after, func, "after_restore")
    return func


def _register(registry: list[Callable[[], Any]], func: Any, name: str) -> None:
    if not callable(func):
        raise InvalidError(f"coldsnap.{name} takes a function, not {func!r}: use it as "
                           f"@coldsnap.{name} on a function without arguments, or call "
                           f"coldsnap.{name}(func)")
    with _lock:
        if func in registry:
            raise InvalidError(f"{_name(func)} is already registered with coldsnap.{name}; "
                               "register each function once (at import, not in a hook)")
        registry.append(func)


def before_snapshot_functions() -> list[tuple[str, Callable[[], Any]]]:
    """(label, function) in the order they run: last registered first. A copy."""
    with _lock:
        return [(f"@coldsnap.before_snapshot {_name(f)}", f) for f in reversed(_before)]


def after_restore_functions() -> list[tuple[str, Callable[[], Any]]]:
    """(label, function) in the order they run: first registered first. A copy."""
    with _lock:
        return [(f"@coldsnap.after_restore {_name(f)}", f) for f in _after]


def _name(func: Any) -> str:
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}" if module else name
