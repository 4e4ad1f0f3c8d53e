"""The container protocol's messages: round trips, the exact headers on the wire, what
the reading side makes of a sloppy or hostile header, and docs/protocol.md's tables."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from coldsnap.wire import control
from coldsnap.wire.framing import read_message, write_message

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

MESSAGES: list[Any] = [
    control.Resume(container_id="cs-1", env={"CUDA_VISIBLE_DEVICES": "0", "GONE": None},
                   seed=2**62, restored=True),
    control.Resume(),
    control.CallInput("fc-1", method="run", max_result_bytes=1 << 20, timeout_s=2.5),
    control.CallInput("fc-2"),
    control.Result("fc-1", ok=True),
    control.Result("fc-2", ok=False),
    control.Request("r1", {"op": "call", "app": "a", "tag": "f"}),
    control.Reply("r1", {"ok": True, "call_id": "fc-3"}),
]


def _through_a_pipe(header: dict[str, Any]) -> dict[str, Any]:
    stream = io.BytesIO()
    write_message(stream, header)
    stream.seek(0)
    return read_message(stream)[0]


@pytest.mark.parametrize("message", MESSAGES, ids=repr)
def test_messages_round_trip_through_the_framing(message: Any) -> None:
    header = _through_a_pipe(message.to_header())
    assert type(message).from_header(header) == message


def test_the_headers_are_the_ones_docs_protocol_md_names_in_their_order() -> None:
    # What went on the wire before these classes existed: key for key, in order.
    resume = control.Resume("cs-1", {"A": None}, 7, False).to_header()
    assert json.dumps(resume) == ('{"type": "resume", "container_id": "cs-1", "env": {"A": null}, '
                                  '"seed": 7, "restored": false}')
    call = control.CallInput("fc-1", None, 100, 30).to_header()
    assert json.dumps(call) == ('{"type": "call", "call_id": "fc-1", "method": null, '
                                '"max_result_bytes": 100, "timeout_s": 30}')
    assert json.dumps(control.Result("fc-1", True).to_header()) == \
        '{"type": "result", "call_id": "fc-1", "ok": true}'
    assert json.dumps(control.Request("r", {"op": "ping"}).to_header()) == \
        '{"type": "request", "request_id": "r", "request": {"op": "ping"}}'
    assert json.dumps(control.Reply("r", {"ok": True}).to_header()) == \
        '{"type": "reply", "request_id": "r", "reply": {"ok": true}}'


def test_resume_reads_what_a_server_may_leave_out() -> None:
    resume = control.Resume.from_header({"type": "resume", "env": None, "seed": "5"})
    assert resume == control.Resume(container_id="", env={}, seed=5, restored=False)
    assert control.Resume.from_header({"env": {"N": 1}}).env == {"N": "1"}


def test_call_input_ignores_limits_that_are_not_numbers() -> None:
    call = control.CallInput.from_header(
        {"call_id": "fc-1", "max_result_bytes": "big", "timeout_s": "soon"})
    assert call == control.CallInput("fc-1")
    assert control.CallInput.from_header({"call_id": "c", "timeout_s": 3}).timeout_s == 3


def test_what_the_server_reads_from_an_untrusted_container_is_not_coerced() -> None:
    # A result for call 12 is not a result for call "12".
    assert control.Result.from_header({"call_id": 12, "ok": 1}) == control.Result("", True)
    assert control.Request.from_header({"request_id": "r", "request": [1]}).header is None
    assert control.Reply.from_header({"request_id": "r"}).header == {}


def test_message_types_go_one_way_each() -> None:
    assert not control.FROM_CONTAINER & control.TO_CONTAINER
    assert {m.to_header()[control.TYPE] for m in MESSAGES} <= (
        control.FROM_CONTAINER | control.TO_CONTAINER)


def _table_types(section: str) -> set[str]:
    text = PROTOCOL_MD.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", body, re.MULTILINE)) - {control.TYPE}  # the head


def test_docs_protocol_md_lists_every_message_type_on_its_side() -> None:
    assert _table_types("Messages, container -> server") == control.FROM_CONTAINER
    assert _table_types("Messages, server -> container") == control.TO_CONTAINER
