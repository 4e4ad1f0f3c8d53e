"""Which input a call made in this container comes from, for the server's call graph
(``wire/call_graph.py``): the call being served, or the HTTP request a web endpoint
is serving (each request is an input of the endpoint, as on Modal).

``WebInputs`` wraps a web endpoint's ASGI app: it gives each HTTP request an input
id, and when a request that made calls ends, it tells the server how it ended.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import os
import uuid
from collections.abc import Callable
from typing import Any

from coldsnap.current import CALL_ID
from coldsnap.wire import ops
from coldsnap.wire.call_graph import ENDED, STATUS, InputStatus, Parent
from coldsnap.wire.container import CONTAINER_ID_ENV


@dataclasses.dataclass
class WebInput:
    input_id: str
    made_calls: bool = False


_WEB_INPUT: contextvars.ContextVar[WebInput | None] = contextvars.ContextVar(
    "coldsnap_web_input", default=None)
# This container's target, as the call graph names it (set once by the lifecycle).
TARGET = {"function_name": "", "module_name": ""}


def parent_input() -> Parent | None:
    """The input a call made now comes from, or None (outside any input)."""
    input_id = CALL_ID.get()
    if input_id is None:
        web_input = _WEB_INPUT.get()
        if web_input is None:
            return None
        web_input.made_calls = True  # its end is worth telling the server
        input_id = web_input.input_id
    return Parent(input_id, TARGET["function_name"], TARGET["module_name"],
                  os.environ.get(CONTAINER_ID_ENV, ""))


# Tells the server that a web input ended, with its status (blocking: run in a thread).
EndReport = Callable[[Parent, InputStatus], None]


class WebInputs:
    """ASGI middleware: each HTTP request is an input (see the module's docstring).
    The end is told before the response's last part goes out: the container's pipe
    is read for it only while the request is in flight."""

    def __init__(self, app: Any, report: EndReport) -> None:
        self.app = app
        self._report = report

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        web_input = WebInput("in-" + uuid.uuid4().hex[:16])
        status = {"code": 500, "told": False}

        async def tell(code: int) -> None:
            if web_input.made_calls and not status["told"]:
                status["told"] = True
                ended = InputStatus.SUCCESS if code < 500 else InputStatus.FAILURE
                parent = Parent(web_input.input_id, TARGET["function_name"],
                                TARGET["module_name"], os.environ.get(CONTAINER_ID_ENV, ""))
                await asyncio.to_thread(self._report, parent, ended)

        async def watched_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message.get("status", 500))
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await tell(status["code"])
            await send(message)

        token = _WEB_INPUT.set(web_input)
        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            await tell(500)
            raise
        finally:
            _WEB_INPUT.reset(token)


def tell_server(parent: Parent, status: InputStatus) -> None:
    """``EndReport`` over the runtime's control channel; best effort: the call graph
    must never fail a response."""
    from coldsnap._runtime.channel import current

    channel = current()
    if channel is None:
        return
    try:
        channel.request({ops.OP: ops.CALL_GRAPH, ENDED: parent.to_dict(),
                         STATUS: int(status)}, None)
    except Exception:  # the server went away: nobody will ask for this graph
        pass
