"""How the handles' calls of many inputs and generator calls run, client side.

``run_many`` spawns a window of calls ahead and gives their results in input order,
or as they finish (``order_outputs=False``); ``stream_items`` reads a generator
call's items as the server streams them (``call`` with ``stream``: docs/server.md).
"""

from __future__ import annotations

import collections
import concurrent.futures
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import cloudpickle

from coldsnap.wire import ops

if TYPE_CHECKING:
    from coldsnap.client import Client
    from coldsnap.handles import FunctionCall

# How many inputs `.map()` keeps in flight ahead of the one it is waiting for.
MAP_WINDOW = 128
# How many results an unordered map waits for at once (a thread and a socket each).
UNORDERED_WAITERS = 32

Spawn = Callable[..., "FunctionCall[Any]"]


def run_many(spawn: Spawn, inputs: Iterator[Sequence[Any]], kwargs: dict[str, Any] | None,
             order_outputs: bool, return_exceptions: bool) -> Iterator[Any]:
    """One call per input; results (or, with ``return_exceptions``, exceptions)."""
    if order_outputs:
        return _in_order(spawn, inputs, kwargs or {}, return_exceptions)
    return _as_finished(spawn, inputs, kwargs or {}, return_exceptions)


def _in_order(spawn: Spawn, inputs: Iterator[Sequence[Any]], kwargs: dict[str, Any],
              return_exceptions: bool) -> Iterator[Any]:
    pending: collections.deque[FunctionCall[Any]] = collections.deque()
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < MAP_WINDOW:
            args = next(inputs, None)
            if args is None:
                exhausted = True
                break
            pending.append(spawn(*args, **kwargs))
        if pending:
            call = pending.popleft()
            try:
                yield call._get_once()
            except Exception as exc:
                if not return_exceptions:
                    raise
                yield exc


def _as_finished(spawn: Spawn, inputs: Iterator[Sequence[Any]], kwargs: dict[str, Any],
                 return_exceptions: bool) -> Iterator[Any]:
    waiters = concurrent.futures.ThreadPoolExecutor(UNORDERED_WAITERS, "coldsnap-map")
    pending: set[concurrent.futures.Future[Any]] = set()
    exhausted = False
    try:
        while pending or not exhausted:
            while not exhausted and len(pending) < MAP_WINDOW:
                args = next(inputs, None)
                if args is None:
                    exhausted = True
                    break
                pending.add(waiters.submit(spawn(*args, **kwargs)._get_once))
            if not pending:
                break
            done, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                try:
                    yield future.result()
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    yield exc
    finally:  # stopped early: the calls go on; nobody waits for them here
        waiters.shutdown(wait=False, cancel_futures=True)


def stream_items(client: Client, app: str, tag: str, method: str | None,
                 args: bytes, variant: dict[str, Any] | None = None) -> Iterator[Any]:
    """A generator call's items, each as soon as the server has it; raises what the call
    raised once its items before that are given."""
    from coldsnap.container_client import ContainerClient

    fields = {"app": app, "tag": tag, "method": method, "stream": True, "timeout": None,
              **({"variant": variant} if variant else {})}
    if isinstance(client, ContainerClient):  # a container's request takes one reply
        _, blob = client.request(ops.CALL, args, **fields)
        for item in pickle.loads(blob or pickle.dumps([])):
            yield cloudpickle.loads(item)
        return
    replies = client._replies({ops.OP: ops.CALL, **fields}, args)
    try:
        for header, blob in replies:
            if header.get("item"):
                yield cloudpickle.loads(blob or b"")
                continue
            client._checked((header, blob))  # the end: raises what the call raised
            return
    finally:
        replies.close()
