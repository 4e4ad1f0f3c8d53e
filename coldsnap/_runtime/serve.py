"""Step 7 of the lifecycle: serve ``call`` messages, one at a time."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import ModuleType, TracebackType

from coldsnap._runtime import generators, network
from coldsnap._runtime.channel import Channel
from coldsnap._runtime.target import Target
from coldsnap.user_code import run_maybe_async
from coldsnap.wire import control, serialization
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.framing import ChannelClosed


def serve(channel: Channel, target: Target) -> None:
    """Answer calls until ``shutdown`` or until the server closes ctrl-in."""
    while True:
        try:
            header, blob = channel.receive()
        except ChannelClosed:
            return
        message_type = header.get(control.TYPE)
        if message_type == control.SHUTDOWN:
            return
        if message_type == control.CALL:
            run_call(channel, target, control.CallInput.from_header(header), blob)
        else:
            print(f"coldsnap runtime: ignoring unexpected message {message_type!r}",
                  file=sys.stderr)


def run_call(channel: Channel, target: Target, call: control.CallInput,
             blob: bytes | None) -> None:
    """Run one input and send its ``result``: the value, or the exception it raised."""
    caller_module: str | None = None
    limit = call.max_result_bytes
    channel.max_payload = limit  # for the calls this one makes to other functions
    timeout = call.timeout_s  # ...which wait no longer than this call may run
    channel.deadline = None if timeout is None else time.monotonic() + timeout
    try:
        function = target.callable_for(call.method)
        if blob is not None:
            caller_module, args, kwargs = serialization.loads_args(blob, target.alias_module)
        else:
            args, kwargs = (), {}
        shared = _shared_module(target, caller_module)
        value = run_maybe_async(generators.stream_items(
            channel.send, call, function(*args, **kwargs), _label(target, call.method),
            lambda item: _dumped(item, shared, limit, target.tag, call.method)))
        payload = _dumped(value, shared, limit, target.tag, call.method)
    except Exception as exc:
        flush_stdio()
        network.add_hint_if_blocked(exc)
        with serialization.by_reference(_shared_module(target, caller_module)):
            blob = serialization.dumps_exception(trim_runtime_frames(exc), limit)
        channel.send(control.Result(call.call_id, ok=False).to_header(), blob)
    else:
        flush_stdio()
        channel.send(control.Result(call.call_id, ok=True).to_header(), payload)


def _dumped(value: object, shared: ModuleType | None, limit: int | None, tag: str,
            method: str | None) -> bytes:
    with serialization.by_reference(shared):
        payload = serialization.dumps_result(value)
    check_result_size(payload, limit, tag, method)
    return payload


def _label(target: Target, method: str | None) -> str:
    return target.tag + (f".{method}" if method else "")


def _shared_module(target: Target, caller_module: str | None) -> ModuleType | None:
    return target.module if target.caller_shares_module(caller_module) else None


def check_result_size(payload: bytes, limit: int | None, tag: str, method: str | None) -> None:
    """Refuse a result over the server's limit here, as an error the caller gets: sent
    anyway, the server would have to stop this container mid-message."""
    if limit is not None and len(payload) > limit:
        label = tag + (f".{method}" if method else "")
        raise InvalidError(
            f"the result of {label} is {len(payload)} bytes pickled, over the limit of "
            f"{limit} bytes (COLDSNAP_MAX_PAYLOAD_BYTES, a setting of the server); write "
            "large outputs to a file or volume and return its path, or raise the limit"
        )


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
