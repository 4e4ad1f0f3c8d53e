"""The call API's ops beyond call/spawn/get: a generator call's streamed items
(``call`` with ``stream``), ``cancel`` and ``call_graph`` (server/call_graph.py).

A streamed call answers with one message per item the generator yields,
``{"ok": true, "item": true}`` with the item as the blob, sent as it comes, then
the call's usual final reply. A container's request takes one reply: its items come
together in the final one (``items``: a pickled list of the items' blobs).
"""

from __future__ import annotations

import pickle
import time
from typing import TYPE_CHECKING

from coldsnap.server.errors import ApiError, Reply
from coldsnap.wire.call_graph import ENDED, GRAPH, PARENT, STATUS, InputStatus, Parent
from coldsnap.wire.errors import CANCELLED, NOT_FOUND, TIMEOUT

if TYPE_CHECKING:
    from coldsnap.server.api import Api, Request
    from coldsnap.server.calls import Call
    from coldsnap.server.pool import Pool

# How long one wait for an item lasts before the client's timeout is looked at again.
_ITEM_WAIT_S = 1.0


def stream_call(api: Api, req: Request, timeout: float | None) -> Reply:
    call, pool = api._submit(req, stream=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    if req.stream is None:  # from a container: one reply, with every item
        items: list[bytes] = []
        while (item := call.next_item(_left(deadline))) is not None:
            items.append(item)
        reply, blob = _ended(api, call, pool, timeout)
        return ({**reply, "items": True}, pickle.dumps(items)) if reply.get("ok") else (
            reply, blob)
    while True:
        item = call.next_item(_wait(deadline))
        if item is not None:
            req.send({"ok": True, "item": True}, item)  # ClientGone: the caller left
        elif call.done.is_set() or _left(deadline) == 0:
            return _ended(api, call, pool, timeout)


def _ended(api: Api, call: Call, pool: Pool, timeout: float | None) -> Reply:
    if not call.done.is_set():  # the caller's timeout ran out
        pool.cancel(call)
        raise ApiError(TIMEOUT, f"no end of {call.label} within {timeout:g} s (call {call.id})")
    return api._await(call, pool, None)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _wait(deadline: float | None) -> float:
    left = _left(deadline)
    return _ITEM_WAIT_S if left is None else min(_ITEM_WAIT_S, left)


def cancel(api: Api, req: Request) -> Reply:
    """``FunctionCall.cancel()``: a queued call is dropped, a running one's container is
    stopped; its ``get`` raises InputCancellation. An ended call stays as it ended."""
    call_id = req.field("call_id", str)
    call = api.platform.calls.get(call_id)
    if call.done.is_set():
        return {"ok": True, "call_id": call_id, "cancelled": False}, None
    reason = f"call {call_id} to {call.label} was cancelled (FunctionCall.cancel())"
    if call.pool is not None:
        call.pool.cancel_call(call, reason)
    return {"ok": True, "call_id": call_id, "cancelled": call.outcome is not None and
            call.outcome.error is not None and call.outcome.error.kind == CANCELLED}, None



def add_to_graph(api: Api, req: Request, call: Call, pool: Pool) -> None:
    """A call or spawn just accepted joins the call graph, under the input it was made
    from when a container made it."""
    parent = req.field(PARENT, dict, None)
    api.platform.call_graph.add(call, pool.fn.module,
                                Parent.from_dict(parent) if parent else None)


def call_graph(api: Api, req: Request) -> Reply:
    """``FunctionCall.get_call_graph()``: the tree of inputs the call is in, from its
    root. From a container, ``ended`` instead reports a web request's end."""
    ended = req.field(ENDED, dict, None)
    if ended is not None:
        status = InputStatus(req.count(STATUS, most=100) or 0)
        api.platform.call_graph.input_ended(Parent.from_dict(ended), status)
        return {"ok": True}, None
    call_id = req.field("call_id", str)
    graph = api.platform.call_graph.graph(call_id)
    if graph is None:
        raise ApiError(NOT_FOUND, f"no call graph has call {call_id!r}: this server made no "
                       "such call, or made it before it last started (the graph is kept in "
                       "memory, for the last 100,000 calls)")
    return {"ok": True, GRAPH: graph}, None
