"""Calls through the real runtime: results, exceptions, big payloads."""

from __future__ import annotations

import cloudpickle
import pytest

from coldsnap.wire import serialization
from tests._runtime.harness import RuntimeSession


def _serve(tag: str) -> RuntimeSession:
    session = RuntimeSession.for_app("square.py", tag)
    session.expect("ready")
    return session


def test_result_and_call_id() -> None:
    session = _serve("square")
    try:
        header, blob = session.call(None, 9, call_id="call-42")
        assert header == {"type": "result", "call_id": "call-42", "ok": True}
        assert blob is not None and cloudpickle.loads(blob) == 81
        assert session.call_value(None, x=-3) == 9
    finally:
        session.close()


def test_user_exception_keeps_its_type_and_remote_traceback() -> None:
    session = _serve("fail")
    try:
        header, blob = session.call(None, "bad input")
        assert header["ok"] is False and blob is not None
        exc = serialization.loads_exception(blob)
        # The app module travels by value: the caller gets the class without importing it.
        assert type(exc).__name__ == "SquareError"
        assert isinstance(exc, ValueError)
        assert str(exc) == "refusing: bad input"
        notes = "\n".join(getattr(exc, "__notes__", []))
        assert "Remote traceback:" in notes
        assert 'raise SquareError(f"refusing: {message}")' in notes
        assert "in fail" in notes
        assert "serve.py" not in notes  # the runtime's own frames are trimmed
        # The container keeps serving after a failed call.
        header, _ = session.call(None, "again", call_id="c2")
        assert header["call_id"] == "c2" and header["ok"] is False
    finally:
        session.close()


def test_builtin_exception_type_is_the_real_one() -> None:
    session = _serve("fail_builtin")
    try:
        with pytest.raises(KeyError) as info:
            session.call_value(None, "missing-key")
        assert info.value.args == ("missing-key",)
    finally:
        session.close()


def test_a_100_mb_result() -> None:
    session = _serve("big")
    try:
        size = 100 * 1024 * 1024
        value = session.call_value(None, size)
        assert isinstance(value, bytes) and len(value) == size
        assert value[:4] == b"ZZZZ" and value[-1:] == b"Z"
    finally:
        session.close()


def test_calling_a_method_that_is_not_a_method_fails_the_call_not_the_container() -> None:
    session = RuntimeSession.for_app("embedder_like.py", "Embedder")
    try:
        session.expect("ready")
        header, blob = session.call("load")
        assert header["ok"] is False and blob is not None
        assert "Embedder has no @coldsnap.method() named 'load'; its methods are: run, state" in (
            str(serialization.loads_exception(blob))
        )
        assert session.call_value("run", ["x"])
    finally:
        session.close()


ASYNC_AND_VALUES = """
import dataclasses
import coldsnap

app = coldsnap.App("values")

@dataclasses.dataclass
class Point:
    x: int
    y: int

@app.function()
async def shift(p, dx):
    return Point(p.x + dx, p.y)

@app.function()
def unpicklable():
    import threading
    return threading.Lock()
"""


def test_async_functions_and_app_defined_result_types() -> None:
    session = RuntimeSession.start(ASYNC_AND_VALUES, "shift")
    try:
        session.expect("ready")
        from types import SimpleNamespace

        point = session.call_value(None, SimpleNamespace(x=1, y=2), 10)
        assert type(point).__name__ == "Point" and (point.x, point.y) == (11, 2)
    finally:
        session.close()


def test_an_unpicklable_result_becomes_an_error_result() -> None:
    session = RuntimeSession.start(ASYNC_AND_VALUES, "unpicklable")
    try:
        session.expect("ready")
        with pytest.raises(TypeError, match="pickle"):
            session.call_value(None)
        assert session.call(None, call_id="again")[0]["ok"] is False
    finally:
        session.close()
