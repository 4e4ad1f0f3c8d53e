"""Which input made each call: the call graph ``FunctionCall.get_call_graph()`` reads.

Every call and spawn the API accepts becomes a node; one made inside a container
names its parent input (``wire/call_graph.PARENT``): a call's input, whose node is
here already, or an HTTP request a web endpoint serves, whose node is made from
what the container says of it (the container reports its end). A node keeps its
call only until the call ends (then its status and container), and the graph keeps
the last ``limit`` nodes, in memory: it is not kept across server restarts.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Any

from coldsnap.server.calls import Call
from coldsnap.wire.call_graph import InputInfo, InputStatus, Parent, status_of

DEFAULT_LIMIT = 100_000


@dataclasses.dataclass
class _Node:
    input_id: str
    function_name: str
    module_name: str
    parent_id: str | None
    call: Call | None = None  # until it ends: its status and container come from it
    task_id: str = ""
    status: InputStatus = InputStatus.PENDING
    children: list[str] = dataclasses.field(default_factory=list)

    def info(self) -> InputInfo:
        status, task_id = self.status, self.task_id
        if self.call is not None:
            status, task_id = _status(self.call), self.call.task_id
        return InputInfo(self.input_id, self.input_id, task_id, status,
                         self.function_name, self.module_name)


class CallGraph:
    """The nodes by input id, oldest first (the first to go past ``limit``)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._nodes: OrderedDict[str, _Node] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, call: Call, module_name: str, parent: Parent | None) -> None:
        """A call just accepted; ``parent``: the input it was made from, if any."""
        name = call.tag + (f".{call.method}" if call.method else "")
        with self._lock:
            if parent is not None and parent.input_id not in self._nodes:
                self._put(_Node(parent.input_id, parent.function_name, parent.module_name,
                                None, task_id=parent.task_id))
            parent_id = parent.input_id if parent is not None else None
            self._put(_Node(call.id, name, module_name, parent_id, call=call))
            if parent_id is not None:
                self._nodes[parent_id].children.append(call.id)

    def call_ended(self, call: Call) -> None:
        """Keep what the graph shows of an ended call, not the call (its blobs)."""
        with self._lock:
            node = self._nodes.get(call.id)
            if node is not None and node.call is call:
                node.status, node.task_id, node.call = _status(call), call.task_id, None

    def input_ended(self, parent: Parent, status: InputStatus) -> None:
        """A web request that made calls ended (its container says so)."""
        with self._lock:
            node = self._nodes.get(parent.input_id)
            if node is not None and node.call is None:
                node.status = status

    def graph(self, input_id: str) -> list[dict[str, Any]] | None:
        """The tree ``input_id`` is in, from its root, as dicts; None: no such input
        (never seen, or gone past the limit)."""
        with self._lock:
            node = self._nodes.get(input_id)
            if node is None:
                return None
            seen = {node.input_id}
            while (parent := self._nodes.get(node.parent_id or "")) is not None \
                    and parent.input_id not in seen:
                node = parent
                seen.add(node.input_id)
            return [self._tree(node, set()).to_dict()]

    def _tree(self, node: _Node, seen: set[str]) -> InputInfo:
        seen.add(node.input_id)
        info = node.info()
        info.children = [self._tree(self._nodes[child], seen) for child in node.children
                         if child in self._nodes and child not in seen]
        return info

    def _put(self, node: _Node) -> None:
        self._nodes[node.input_id] = node
        while len(self._nodes) > self._limit:
            self._nodes.popitem(last=False)


def _status(call: Call) -> InputStatus:
    outcome = call.outcome
    if outcome is None:
        return InputStatus.PENDING
    return status_of(outcome.ok, outcome.error.kind if outcome.error else None)
