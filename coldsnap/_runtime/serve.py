"""Step 7 of the lifecycle: serve ``call`` messages, one at a time."""

from __future__ import annotations

import sys
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
        channel.send("result", serialization.dumps_exception(exc), call_id=call_id, ok=False)
    else:
        flush_stdio()
        channel.send("result", payload, call_id=call_id, ok=True)


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
