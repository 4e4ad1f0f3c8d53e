"""Step 7 of the lifecycle: serve ``call`` messages, one at a time."""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from coldsnap._runtime import serialization
from coldsnap._runtime.channel import Channel
from coldsnap._runtime.framing import ChannelClosed
from coldsnap._runtime.target import Target, run_maybe_async


def serve(channel: Channel, target: Target) -> None:
    """Answer calls until ``shutdown`` or until the server closes ctrl-in."""
    while True:
        try:
            header, blob = channel.receive()
        except ChannelClosed:
            return
        kind = header.get("type")
        if kind == "shutdown":
            return
        if kind == "call":
            run_call(channel, target, header, blob)
        else:
            print(f"coldsnap runtime: ignoring unexpected message {kind!r}", file=sys.stderr)


def run_call(channel: Channel, target: Target, header: dict[str, Any], blob: bytes | None) -> None:
    """Run one input and send its ``result``: the value, or the exception it raised."""
    call_id = header.get("call_id")
    try:
        function = target.callable_for(header.get("method"))
        args, kwargs = serialization.loads_args(blob) if blob is not None else ((), {})
        value = run_maybe_async(function(*args, **kwargs))
        payload = serialization.dumps_result(value)
    except Exception as exc:
        flush_stdio()
        blob = serialization.dumps_exception(trim_runtime_frames(exc))
        channel.send("result", blob, call_id=call_id, ok=False)
    else:
        flush_stdio()
        channel.send("result", payload, call_id=call_id, ok=True)


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


_RUNTIME_DIR = str(Path(__file__).resolve().parent)


def trim_runtime_frames(exc: BaseException) -> BaseException:
    """Drop the runtime's own leading frames from ``exc``'s traceback: the caller
    wants to see their code, starting at the function or hook that raised."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and _is_runtime_frame(tb):
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _is_runtime_frame(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return filename.startswith(_RUNTIME_DIR) or filename.endswith("contextlib.py")
