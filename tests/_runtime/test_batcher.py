"""``@coldsnap.batched`` through the real runtime: single inputs sent at once run as one
call with lists, a lone input waits no longer than wait_ms, a batch's exception reaches
each of its inputs, a result list of the wrong length is an error for each, and an
input whose arguments don't fit the function fails alone."""

from __future__ import annotations

import time
from typing import Any

import cloudpickle

from coldsnap.wire import serialization
from tests._runtime.harness import RuntimeSession


def _send(session: RuntimeSession, call_id: str, *args: Any, method: str | None = None,
          **kwargs: Any) -> None:
    session.send("call", serialization.dumps_args(args, kwargs), call_id=call_id,
                 method=method, max_inputs=4)


def _results(session: RuntimeSession, count: int) -> dict[str, tuple[bool, Any]]:
    results = {}
    for _ in range(count):
        header, blob = session.expect("result")
        assert blob is not None
        value = (cloudpickle.loads(blob) if header["ok"]
                 else serialization.loads_exception(blob))
        results[header["call_id"]] = (header["ok"], value)
    return results


def test_inputs_sent_at_once_run_as_one_batch() -> None:
    session = RuntimeSession.for_app("batched_inputs.py", "add")
    try:
        session.expect("ready")
        for i in range(4):
            _send(session, f"c{i}", i, 100 * i)
        results = _results(session, 4)
        assert results == {f"c{i}": (True, (101 * i, 4)) for i in range(4)}
        assert "batch of 4" in session.wait_for_log("batch of 4")
        _send(session, "k", 1, ys=2)  # keywords bind to the function's parameters
        assert _results(session, 1) == {"k": (True, (3, 1))}
    finally:
        session.close()


def test_a_lone_input_waits_about_wait_ms() -> None:
    session = RuntimeSession.for_app("batched_inputs.py", "lone")
    try:
        session.expect("ready")
        _send(session, "solo", time.time())
        (ok, waited), = _results(session, 1).values()
        assert ok
        assert 0.25 <= waited < 5.0, waited  # wait_ms=300; generous for a loaded machine
    finally:
        session.close()


def test_a_batch_that_raises_fails_each_of_its_inputs() -> None:
    session = RuntimeSession.for_app("batched_inputs.py", "fails")
    try:
        session.expect("ready")
        for call_id, x in (("a", 1), ("b", 13), ("c", 2)):
            _send(session, call_id, x)
        results = _results(session, 3)
        for ok, exc in results.values():
            assert not ok and isinstance(exc, ValueError)
            assert "13 is unlucky (batch [1, 2, 13])" in str(exc)
        _send(session, "bad", 1, 2)  # one value too many: fails alone
        _send(session, "good", 5)
        results = _results(session, 2)
        assert results["good"] == (True, 5)
        ok, exc = results["bad"]
        assert not ok and isinstance(exc, TypeError)
        assert "fails (batched): too many positional arguments" in str(exc)
    finally:
        session.close()


def test_a_type_error_of_unannotated_parameters_says_they_are_lists() -> None:
    session = RuntimeSession.for_app("batched_inputs.py", "plus_one")
    try:
        session.expect("ready")
        _send(session, "a", 1)
        header, blob = session.expect("result")
        assert blob is not None and not header["ok"]
        exc = serialization.loads_exception(blob)
        assert isinstance(exc, TypeError) and "can only concatenate list" in str(exc)
        note = ("coldsnap: under @coldsnap.batched each parameter receives a list of the "
                "callers' values")
        assert any(n.startswith(note) for n in getattr(exc, "__notes__", [])), exc
        # The traceback travels as text too, for logs (the server never unpickles).
        assert "return x + 1" in header["traceback"] and note in header["traceback"]
    finally:
        session.close()


def test_a_result_list_of_the_wrong_length_fails_each_input() -> None:
    session = RuntimeSession.for_app("batched_inputs.py", "too_short")
    try:
        session.expect("ready")
        for call_id in ("a", "b"):
            _send(session, call_id, 1)
        for ok, exc in _results(session, 2).values():
            assert not ok
            assert ("too_short is batched: it must return a list with one element per "
                    "input, 2 for this batch, but it returned a list of 1") in str(exc)
    finally:
        session.close()


def test_a_class_method_is_batched() -> None:
    session = RuntimeSession.for_app("batched_inputs.py", "Scaler")
    try:
        session.expect("ready")
        for i in range(3):
            _send(session, f"c{i}", i, method="scale")
        assert _results(session, 3) == {f"c{i}": (True, (10 * i, 3)) for i in range(3)}
    finally:
        session.close()
