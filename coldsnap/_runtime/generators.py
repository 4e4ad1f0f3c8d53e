"""Generator calls (``remote_gen``): each value a generator yields goes to the server
as an ``item`` message at once, so the caller sees it before the next is produced.

``serve.run_call`` hands every call's return value to ``stream_items``: a generator
is streamed when the caller asked for it (``CallInput.stream``), and refused with the
fix when it did not; a plain value asked for with ``remote_gen`` is refused too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from coldsnap.wire import control
from coldsnap.wire.errors import InvalidError

# Pickles one yielded value (under the caller's by-reference rules) and checks its size.
DumpItem = Callable[[Any], bytes]


def is_generator(value: object) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def stream_items(send: Callable[[dict[str, Any], bytes | None], None],
                 call: control.CallInput, value: Any, label: str, dump: DumpItem) -> Any:
    """Send a generator's items as ``item`` messages and return None (the call's result);
    any other value is returned as it is. InvalidError when the call and the function
    disagree about being a generator."""
    if not is_generator(value):
        if call.stream:
            if inspect.iscoroutine(value):
                value.close()  # never awaited: no "coroutine was never awaited" warning
            raise InvalidError(f"{label} is not a generator function: call "
                               f"{label}.remote(...) instead of .remote_gen(...)")
        return value
    if not call.stream:
        value.close() if inspect.isgenerator(value) else None
        raise InvalidError(f"{label} is a generator function: call {label}.remote_gen(...) "
                           "to iterate over the values it yields (.remote() can't return them)")
    header = control.Item(call.call_id).to_header()
    for item in _items(value):
        send(header, dump(item))
    return None


def _items(value: Any) -> Iterator[Any]:
    if inspect.isgenerator(value):
        yield from value
        return
    yield from _drain_async(value)


def _drain_async(agen: AsyncIterator[Any]) -> Iterator[Any]:
    """An async generator's items, one loop step per item, as a plain iterator."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
