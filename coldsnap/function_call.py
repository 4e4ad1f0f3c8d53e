"""``FunctionCall``: a spawned call, by its id; ``get()`` waits for its result.

Remote calls go through ``coldsnap.client.Client.default()``; it is imported when
first needed, so defining an app never touches the network.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import cloudpickle

from coldsnap._aio import static_with_aio, with_aio
from coldsnap.call_graph import InputInfo
from coldsnap.unsupported import MODAL_FUNCTION_CALL_ATTRIBUTES, ModalClass, missing_attribute
from coldsnap.wire import ops, serialization
from coldsnap.wire.errors import InvalidError

if TYPE_CHECKING:
    from coldsnap.client import Client

R = TypeVar("R")


def _client() -> Client:
    from coldsnap.client import Client

    return Client.default()


class FunctionCall(Generic[R], metaclass=ModalClass):
    """A spawned call; ``get()`` waits for its result (or raises its exception).

    Its id (``object_id``) can be kept and used from any process, also after the server
    restarted: the result stays fetchable for ``COLDSNAP_CALL_RESULT_TTL_S`` (7 days)
    after the call ended::

        call_id = coldsnap.Function.from_name("squares", "square").spawn(4).object_id
        ...
        print(coldsnap.FunctionCall.from_id(call_id).get(timeout=5))
    """

    def __init__(self, call_id: str, client: Client | None = None) -> None:
        self.object_id = call_id
        self._client = client

    @staticmethod
    def from_id(function_call_id: str, client: Client | None = None) -> FunctionCall[Any]:
        """The call with this id (Modal's signature); ``client``: the default one if None."""
        return FunctionCall(function_call_id, client)

    @with_aio
    def get(self, timeout: float | None = None) -> R:
        """The call's return value; raises the remote exception with its traceback.

        ``coldsnap.exception.OutputExpiredError`` once the result expired; a
        ``ServerError`` of kind ``interrupted`` when the server stopped before the call
        ended (call it again)."""
        if timeout is not None:
            if not (isinstance(timeout, int | float) and not isinstance(timeout, bool)
                    and math.isfinite(timeout) and timeout >= 0):
                raise InvalidError(f"FunctionCall.get(timeout=...) takes seconds >= 0 or None,"
                                   f" not {timeout!r}")
            # A wait longer than the server takes (a week) is as good as forever here.
            timeout = min(float(timeout), ops.MAX_WAIT_S)
        client = self._client or _client()
        result: R = cloudpickle.loads(client.get(self.object_id, timeout))
        return result

    @with_aio
    def cancel(self, terminate_containers: bool = False) -> None:
        """Cancel the call: a queued one never runs; a running one's container is
        stopped (coldsnap can't interrupt a call inside its container, so
        ``terminate_containers`` is always in effect). ``get()`` then raises
        ``coldsnap.exception.InputCancellation``; a call that already ended keeps its
        result."""
        client = self._client or _client()
        client.request(ops.CANCEL, call_id=self.object_id)

    @with_aio
    def get_call_graph(self) -> list[InputInfo]:
        """The tree of inputs this call is in, from its root: the input that made it (a
        call's, or a web request's) and every call each made, with their status
        (``coldsnap.call_graph``)."""
        client = self._client or _client()
        header, _ = client.request(ops.CALL_GRAPH, call_id=self.object_id)
        return [InputInfo.from_dict(root) for root in header.get("graph") or ()]

    @static_with_aio
    def gather(*function_calls: FunctionCall[Any]) -> list[Any]:
        """The results of ``function_calls``, in their order; raises the first
        exception one of them raised::

            squares = coldsnap.FunctionCall.gather(*(square.spawn(i) for i in range(4)))
        """
        return [call.get() for call in function_calls]

    def _get_once(self) -> R:
        """``get``, and the server drops the result: ``map`` wants each one once, and
        keeping them all on disk for days would fill it."""
        client = self._client or _client()
        _, blob = client.request(ops.GET, call_id=self.object_id, timeout=None, forget=True)
        result: R = cloudpickle.loads(blob if blob is not None
                                      else serialization.dumps_result(None))
        return result

    def __getattr__(self, name: str) -> Any:
        missing_attribute("coldsnap.FunctionCall", name, MODAL_FUNCTION_CALL_ATTRIBUTES)

    def __repr__(self) -> str:
        return f"FunctionCall({self.object_id!r})"
