"""Concurrent inputs through the real runtime: calls that say ``max_inputs`` > 1 run at
once (each waits for one sent after it), results come back by call id, each input's
log lines carry its call id, and a SystemExit ends one input, not the container."""

from __future__ import annotations

import cloudpickle

from coldsnap.wire import serialization
from coldsnap.wire.log_tags import tag_line
from tests._runtime.harness import RuntimeSession

SOURCE = '''
import asyncio
import sys
import threading

import coldsnap

app = coldsnap.App("rt-concurrent")
GATE = threading.Event()


@app.function()
@coldsnap.concurrent(max_inputs=3)
def gate(name: str) -> str:
    print(f"{name} waits", end="")
    print(" at the gate", flush=True)
    if name == "opener":
        GATE.set()
    assert GATE.wait(10), "nobody opened the gate: the inputs ran one at a time"
    if name == "quitter":
        sys.exit(4)
    return name


EVENT = None


@app.function()
@coldsnap.concurrent(max_inputs=3)
async def async_gate(name: str) -> str:
    global EVENT
    EVENT = EVENT or asyncio.Event()
    if name == "opener":
        EVENT.set()
    await asyncio.wait_for(EVENT.wait(), 10)
    return name
'''


def _send(session: RuntimeSession, call_id: str, name: str) -> None:
    session.send("call", serialization.dumps_args((name,), {}), call_id=call_id, method=None,
                 max_inputs=3)


def _results(session: RuntimeSession, count: int) -> dict[str, object]:
    results = {}
    for _ in range(count):
        header, blob = session.expect("result")
        assert header["ok"], serialization.loads_exception(blob)  # type: ignore[arg-type]
        results[header["call_id"]] = cloudpickle.loads(blob)
    return results


def test_sync_inputs_run_at_once_on_threads_with_their_own_log_lines() -> None:
    session = RuntimeSession.start(SOURCE, "gate")
    try:
        session.expect("ready")
        for call_id, name in (("c1", "a"), ("c2", "b"), ("c3", "opener")):
            _send(session, call_id, name)
        assert _results(session, 3) == {"c1": "a", "c2": "b", "c3": "opener"}
        logs = session.logs()
        for call_id, name in (("c1", "a"), ("c2", "b"), ("c3", "opener")):
            assert tag_line(call_id, f"{name} waits at the gate") in logs, logs
        _send(session, "c4", "quitter")
        header, blob = session.expect("result")
        assert (header["call_id"], header["ok"]) == ("c4", False)
        exc = serialization.loads_exception(blob)  # type: ignore[arg-type]
        assert "SystemExit(4) ended this input" in str(exc)
        _send(session, "c5", "after")  # the container carries on
        assert _results(session, 1) == {"c5": "after"}
    finally:
        session.close()


def test_async_inputs_run_at_once_as_tasks() -> None:
    session = RuntimeSession.start(SOURCE, "async_gate")
    try:
        session.expect("ready")
        for call_id, name in (("c1", "a"), ("c2", "b"), ("c3", "opener")):
            _send(session, call_id, name)
        assert _results(session, 3) == {"c1": "a", "c2": "b", "c3": "opener"}
    finally:
        session.close()
