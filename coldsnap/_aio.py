"""``.aio``: the async twin of a handle's method (Modal's spelling)::

    result = await square.remote.aio(3)
    async for value in square.map.aio(range(10)):
        ...

``@with_aio`` on a method gives it an ``.aio`` attribute once bound: a coroutine
function that runs the blocking method in a worker thread (the client's sockets,
or a container's control pipe, are shared safely between threads), or, for a
method that returns an iterator (``map``, ``remote_gen``), an async generator
that takes each next value in a worker thread.

The worker threads are ours, not the event loop's default executor: that one has
``cpu_count + 4`` threads, so a few awaits that wait long (``Queue.get.aio()``
with nothing queued yet) would hold every thread and starve the await that would
wake them (the ``put.aio()``): a deadlock on a small machine.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])
_DONE = object()
# Threads start as needed and each waits on the server, not the CPU: many may wait at once.
_WAITERS = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="coldsnap-aio")


async def _in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread`` on our own threads (see the module's docstring)."""
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_WAITERS, call)


def with_aio(method: F) -> F:
    """A method whose bound form also has ``.aio``, awaiting the method's value."""
    return cast(F, _AioMethod(method, _coroutine_of))


def with_aio_iter(method: F) -> F:
    """A method returning an iterator whose ``.aio`` is an async iterator of it."""
    return cast(F, _AioMethod(method, _async_iter_of))


def static_with_aio(function: F) -> F:
    """A staticmethod with ``.aio`` (``FunctionCall.gather.aio``)."""
    return cast(F, _AioMethod(function, _coroutine_of, static=True))


class _AioMethod:
    def __init__(self, method: Callable[..., Any],
                 make_aio: Callable[[Callable[..., Any]], Callable[..., Any]],
                 static: bool = False) -> None:
        self._method = method
        self._make_aio = make_aio
        self._static = static
        functools.update_wrapper(self, method)

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None and not self._static:
            return self
        bound = self._method if self._static else self._method.__get__(obj, owner)
        return _Bound(bound, self._make_aio(bound))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # as a plain function (tests)
        return self._method(*args, **kwargs)


class _Bound:
    """``f.remote``: call it, or ``await f.remote.aio(...)``."""

    def __init__(self, bound: Callable[..., Any], aio: Callable[..., Any]) -> None:
        self._bound = bound
        self.aio = aio
        functools.update_wrapper(self, bound)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._bound(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._bound!r} (.aio: its async form)>"


def _coroutine_of(bound: Callable[..., Any]) -> Callable[..., Any]:
    async def aio(*args: Any, **kwargs: Any) -> Any:
        return await _in_thread(bound, *args, **kwargs)

    aio.__name__ = aio.__qualname__ = f"{getattr(bound, '__name__', 'method')}.aio"
    return aio


def _async_iter_of(bound: Callable[..., Any]) -> Callable[..., Any]:
    def aio(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return _iterate_in_thread(lambda: bound(*args, **kwargs))

    aio.__name__ = aio.__qualname__ = f"{getattr(bound, '__name__', 'method')}.aio"
    return aio


async def _iterate_in_thread(start: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """The iterator ``start()`` gives, each step taken in a worker thread (a step may wait
    long for a result); closed when the async iteration stops early."""
    iterator = await _in_thread(start)
    try:
        while True:
            value = await _in_thread(next, iterator, _DONE)
            if value is _DONE:
                return
            yield value
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await _in_thread(close)
