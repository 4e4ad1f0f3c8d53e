"""The call graph's contract: which input made a call, and the tree the server answers
``call_graph`` with (``FunctionCall.get_call_graph()``, Modal's ``modal.call_graph``).

A call or spawn made inside a container carries ``PARENT``: the input it was made
from (a call's input, or an HTTP request a web endpoint serves). Example::

    {"op": "spawn", ..., "parent": {"input_id": "fc-1a2b", "function_name": "web",
                                    "module_name": "app", "task_id": "cs-3c4d"}}
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import Any

from coldsnap.wire import errors as kinds

PARENT = "parent"  # field of a call/spawn request: the input it was made from
GRAPH = "graph"  # field of the call_graph reply: its roots, as dicts
ENDED = "ended"  # field of a container's call_graph request: a web input it ended
STATUS = "status"


class InputStatus(IntEnum):
    """Where an input stands (Modal's ``modal.call_graph.InputStatus``)."""

    PENDING = 0
    SUCCESS = 1
    FAILURE = 2
    TERMINATED = 3
    TIMEOUT = 4
    INIT_FAILURE = 5

    @classmethod
    def _missing_(cls, value: object) -> InputStatus:
        return cls.PENDING  # a status a newer server has: not ended, as far as we know


# The error kinds (wire/errors.py) that are not the function's own failure.
_STATUS_OF_ERROR = {
    kinds.TIMEOUT: InputStatus.TIMEOUT,
    kinds.BOOT_FAILED: InputStatus.INIT_FAILURE,
    kinds.CANCELLED: InputStatus.TERMINATED,
    kinds.INTERRUPTED: InputStatus.TERMINATED,
    kinds.CONTAINER_DIED: InputStatus.TERMINATED,
    kinds.UNAVAILABLE: InputStatus.TERMINATED,
}


def status_of(ok: bool | None, error_kind: str | None = None) -> InputStatus:
    """An input's status from its outcome: None while it has none."""
    if ok is None:
        return InputStatus.PENDING
    if ok:
        return InputStatus.SUCCESS
    return _STATUS_OF_ERROR.get(error_kind or "", InputStatus.FAILURE)


@dataclasses.dataclass(frozen=True)
class Parent:
    """The input a call was made from, as the container that made it knows it."""

    input_id: str
    function_name: str = ""
    module_name: str = ""
    task_id: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parent:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in fields})


@dataclasses.dataclass
class InputInfo:
    """One input of a call graph and the inputs it called (Modal's
    ``modal.call_graph.InputInfo``). Example::

        root = coldsnap.FunctionCall.from_id(call_id).get_call_graph()[0]
        for child in root.children:
            print(child.function_name, child.status.name)
    """

    input_id: str
    function_call_id: str
    task_id: str
    status: InputStatus
    function_name: str
    module_name: str
    children: list[InputInfo] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"input_id": self.input_id, "function_call_id": self.function_call_id,
                "task_id": self.task_id, STATUS: int(self.status),
                "function_name": self.function_name, "module_name": self.module_name,
                "children": [child.to_dict() for child in self.children]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputInfo:
        return cls(str(data["input_id"]), str(data["function_call_id"]),
                   str(data.get("task_id", "")), InputStatus(int(data.get(STATUS, 0))),
                   str(data.get("function_name", "")), str(data.get("module_name", "")),
                   [cls.from_dict(child) for child in data.get("children") or ()])
