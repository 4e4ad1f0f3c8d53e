"""Step 7 of the lifecycle: serve ``call`` messages, one at a time, or several at once
for a ``@coldsnap.concurrent`` target."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from coldsnap._runtime import generators, input_logs, network
from coldsnap._runtime.channel import Channel
from coldsnap._runtime.target import Target
from coldsnap.user_code import run_maybe_async
from coldsnap.wire import control, serialization
from coldsnap.wire.errors import InvalidError, SerializationError
from coldsnap.wire.framing import ChannelClosed


def serve(channel: Channel, target: Target) -> None:
    """Answer calls until ``shutdown`` or until the server closes ctrl-in. Calls that
    say ``max_inputs`` > 1 run concurrently (the server sends no more than that); a
    ``@coldsnap.batched`` target's go to its batcher."""
    from coldsnap._runtime.batcher import Batcher, batch_settings  # it uses this module

    settings = batch_settings(target)
    inputs: ConcurrentInputs | Batcher | None = None
    if settings is not None:
        inputs = Batcher(channel, target, *settings)
    shutdown = False
    try:
        while True:
            try:
                header, blob = channel.receive()
            except ChannelClosed:
                return
            message_type = header.get(control.TYPE)
            if message_type == control.SHUTDOWN:
                shutdown = True
                return
            if message_type != control.CALL:
                print(f"coldsnap runtime: ignoring unexpected message {message_type!r}",
                      file=sys.stderr)
                continue
            call = control.CallInput.from_header(header)
            if isinstance(inputs, Batcher):
                inputs.add(call, blob)
                continue
            if call.max_inputs == 1 and inputs is None:
                run_call(channel, target, call, blob)
                continue
            if inputs is None:
                inputs = ConcurrentInputs(channel, target, call.max_inputs)
            inputs.start(call, blob)
    finally:
        if inputs is not None:
            inputs.close(wait=shutdown)


class ConcurrentInputs:
    """Inputs of a ``@coldsnap.concurrent`` target, run at once (Modal's semantics): a
    sync function's on a pool of ``max_inputs`` threads, an async function's as tasks on
    one event loop, on a thread of its own. The server sends no more than max_inputs
    at once (the first concurrent call's: a container's pool keeps it)."""

    def __init__(self, channel: Channel, target: Target, max_inputs: int) -> None:
        self._channel = channel
        self._target = target
        self._threads = ThreadPoolExecutor(max_inputs, thread_name_prefix="coldsnap-input")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._running: set[Future[None]] = set()
        input_logs.install()  # each caller gets the lines its own input printed

    def start(self, call: control.CallInput, blob: bytes | None) -> None:
        if self._is_async(call.method):
            coroutine = run_call_async(self._channel, self._target, call, blob)
            future: Future[None] = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        else:
            future = self._threads.submit(run_call, self._channel, self._target, call, blob)
        self._running.add(future)
        future.add_done_callback(lambda done: self._ended(call, done))

    def _ended(self, call: control.CallInput, future: Future[None]) -> None:
        """run_call answers every Exception; an input that ended with another
        BaseException (SystemExit, a cancelled task) is answered here, or its caller
        would wait for its timeout."""
        self._running.discard(future)
        exc = asyncio.CancelledError() if future.cancelled() else future.exception()
        if exc is None:
            return
        error = RuntimeError(f"{type(exc).__name__}({exc}) ended this input; in a concurrent "
                             "input it stops that input only, not the container")
        try:
            _send_exception(self._channel, self._target, call, None, error)
        except Exception:  # the server is gone (a shutdown cancelled the input)
            pass

    def _is_async(self, method: str | None) -> bool:
        try:
            function = self._target.callable_for(method)
        except Exception:  # run_call reports it to the caller
            return False
        return inspect.iscoroutinefunction(function)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                                 name="coldsnap-input-loop")
            self._loop_thread.start()
        return self._loop

    def close(self, wait: bool) -> None:
        """``wait``: let running inputs finish (a clean shutdown; the server sends it
        only to an idle container); else the server is gone: leave them."""
        if wait:
            futures_wait(list(self._running))
        self._threads.shutdown(wait=wait, cancel_futures=True)
        if self._loop is not None and self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if wait:
                self._loop_thread.join()


def run_call(channel: Channel, target: Target, call: control.CallInput,
             blob: bytes | None) -> None:
    """Run one input and send its ``result``: the value, or the exception it raised."""
    _enter_input(channel, call)
    caller_module: str | None = None
    try:
        function = target.callable_for(call.method)
        caller_module, args, kwargs = _arguments(target, blob)
        value = run_maybe_async(generators.stream_items(
            channel.send, call, function(*args, **kwargs), _label(target, call.method),
            _item_dumper(target, caller_module, call)))
    except Exception as exc:
        _send_exception(channel, target, call, caller_module, exc)
    else:
        _send_value(channel, target, call, caller_module, value)


async def run_call_async(channel: Channel, target: Target, call: control.CallInput,
                         blob: bytes | None) -> None:
    """``run_call`` for an async function, as a task on the inputs' event loop."""
    _enter_input(channel, call)
    caller_module: str | None = None
    try:
        function = target.callable_for(call.method)
        caller_module, args, kwargs = _arguments(target, blob)
        value = generators.stream_items(
            channel.send, call, function(*args, **kwargs), _label(target, call.method),
            _item_dumper(target, caller_module, call))
        if inspect.iscoroutine(value):
            value = await value
    except Exception as exc:
        _send_exception(channel, target, call, caller_module, exc)
    else:
        _send_value(channel, target, call, caller_module, value)


def _enter_input(channel: Channel, call: control.CallInput) -> None:
    """This input's limits, for the calls it makes to other functions, and its log
    lines' tag (per thread or task)."""
    input_logs.enter(call.call_id)
    channel.max_payload = call.max_result_bytes
    timeout = call.timeout_s  # ...which wait no longer than this input may run
    channel.deadline = None if timeout is None else time.monotonic() + timeout


def _arguments(target: Target, blob: bytes | None
               ) -> tuple[str | None, tuple[Any, ...], dict[str, Any]]:
    if blob is None:
        return None, (), {}
    caller_module, args, kwargs = serialization.loads_args(blob, target.alias_module)
    return caller_module, tuple(args), dict(kwargs)


def _send_value(channel: Channel, target: Target, call: control.CallInput,
                caller_module: str | None, value: Any) -> None:
    try:
        payload = _dumped(value, _shared_module(target, caller_module),
                          call.max_result_bytes, target.tag, call.method)
    except Exception as exc:
        _send_exception(channel, target, call, caller_module, exc)
        return
    input_logs.leave(call.call_id)  # the input's last line goes before its result
    flush_stdio()
    channel.send(control.Result(call.call_id, ok=True).to_header(), payload)


def _item_dumper(target: Target, caller_module: str | None, call: control.CallInput
                 ) -> generators.DumpItem:
    """Pickles one value a generator yields, as the result would be."""
    shared = _shared_module(target, caller_module)
    return lambda item: _dumped(item, shared, call.max_result_bytes, target.tag, call.method)


def _send_exception(channel: Channel, target: Target, call: control.CallInput,
                    caller_module: str | None, exc: Exception) -> None:
    input_logs.leave(call.call_id)
    flush_stdio()
    network.add_hint_if_blocked(exc)
    trimmed = trim_runtime_frames(exc)
    with serialization.by_reference(_shared_module(target, caller_module)):
        blob = serialization.dumps_exception(trimmed, call.max_result_bytes)
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    text = "".join(traceback.format_exception(trimmed))  # for logs: the server never unpickles
    result = control.Result(call.call_id, ok=False, summary=summary, traceback=text)
    channel.send(result.to_header(), blob)


def _dumped(value: object, shared: ModuleType | None, limit: int | None, tag: str,
            method: str | None) -> bytes:
    with serialization.by_reference(shared):
        try:
            payload = serialization.dumps_result(value)
        except Exception as exc:
            raise unsendable_result(exc, tag + (f".{method}" if method else "")) from exc
    check_result_size(payload, limit, tag, method)
    return payload


def unsendable_result(exc: Exception, label: str) -> Exception:
    """``exc``, raised pickling what ``label`` returned, as an exception that says so:
    of the same type where it takes a message (``except TypeError`` still catches
    ``cannot pickle '_thread.lock' object``), else a SerializationError."""
    message = (f"the result of {label} could not be sent back to the caller: {exc}. "
               "Return a value pickle can copy (plain data, not a lock, socket or open file)")
    try:
        again = type(exc)(message)
    except Exception:  # a constructor that wants other arguments
        return SerializationError(message)
    return again if str(again) == message else SerializationError(message)


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
