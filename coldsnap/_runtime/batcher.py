"""``@coldsnap.batched`` in the container: inputs arrive one ``call`` message each; the
batcher groups up to ``max_batch_size`` of them, waiting at most ``wait_ms`` after the
first for more, calls the function once with a list per parameter, and answers each
input with its own element of the list the function returned.

The server sends a batched container up to ``max_batch_size`` inputs at once (its input
slots), so a batch fills while callers wait. Batches run one at a time, on one thread
of their own; an async function's on one event loop that lives as long as the
container. What a batch prints reaches every caller in it (the lines are untagged).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap._runtime.channel import Channel
from coldsnap._runtime.serve import _arguments, _send_exception, _send_value
from coldsnap._runtime.target import Target
from coldsnap.batching import takes_lists
from coldsnap.wire import control
from coldsnap.wire.errors import InvalidError


@dataclasses.dataclass
class _Input:
    call: control.CallInput
    blob: bytes | None
    caller_module: str | None = None
    arguments: inspect.BoundArguments | None = None


def batch_settings(target: Target) -> tuple[int, int] | None:
    """``(max_batch_size, wait_ms)`` when the target is batched, else None."""
    options = target.handle.options
    if options is None or options.batch_max_size is None:
        return None
    return options.batch_max_size, options.batch_wait_ms or 0


class Batcher:
    """Takes a batched target's inputs (``add``) and runs them in batches."""

    def __init__(self, channel: Channel, target: Target, max_batch_size: int,
                 wait_ms: int) -> None:
        self._channel = channel
        self._target = target
        self._max_size = max_batch_size
        self._wait_s = wait_ms / 1000
        self._queue: queue.Queue[_Input | None] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="coldsnap-batcher")
        self._thread.start()

    def add(self, call: control.CallInput, blob: bytes | None) -> None:
        self._queue.put(_Input(call, blob))

    def close(self, wait: bool) -> None:
        """``wait``: run what is queued first (a clean shutdown), else leave it."""
        self._queue.put(None)
        if wait:
            self._thread.join()

    def _run(self) -> None:
        while True:
            batch, last = self._next_batch()
            if batch:
                self._run_batch(batch)
            if last:
                if self._loop is not None:
                    self._loop.close()
                return

    def _next_batch(self) -> tuple[list[_Input], bool]:
        """Up to max_batch_size inputs: the first one, and those that came within
        wait_ms of it; True when the container is closing."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._wait_s
        while len(batch) < self._max_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run_batch(self, batch: list[_Input]) -> None:
        function = self._function(batch)
        if function is None:
            return
        valid = [item for item in batch if self._bind(function, item)]
        if not valid:
            return
        self._enter_batch(valid)
        try:
            values = self._call(function, valid)
        except Exception as exc:
            _note_lists(function, exc)
            for item in valid:
                _send_exception(self._channel, self._target, item.call, item.caller_module, exc)
            return
        for item, value in zip(valid, values, strict=True):
            _send_value(self._channel, self._target, item.call, item.caller_module, value)

    def _function(self, batch: list[_Input]) -> Callable[..., Any] | None:
        """The batched function, or None after answering every input with why not."""
        try:
            return self._target.callable_for(batch[0].call.method)
        except Exception as exc:
            for item in batch:
                _send_exception(self._channel, self._target, item.call, None, exc)
            return None

    def _bind(self, function: Callable[..., Any], item: _Input) -> bool:
        """Unpickle one input's arguments and bind them to the function's parameters
        (each element of a list); False after answering it with why they don't fit."""
        try:
            if item.call.stream:
                raise InvalidError(f"{self._label(item)} is a batched function, not a "
                                   "generator: call it with .remote(), not .remote_gen()")
            item.caller_module, args, kwargs = _arguments(self._target, item.blob)
            try:
                item.arguments = inspect.signature(function).bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self._label(item)} (batched): {exc}; call it with one "
                                "value per parameter, the batch gets a list of them") from None
            item.arguments.apply_defaults()
        except Exception as exc:
            _send_exception(self._channel, self._target, item.call, item.caller_module, exc)
            return False
        return True

    def _enter_batch(self, batch: list[_Input]) -> None:
        """The batch's limits, for the calls it makes to other functions: the
        tightest of its inputs'."""
        limits = [i.call.max_result_bytes for i in batch if i.call.max_result_bytes is not None]
        self._channel.max_payload = min(limits) if limits else None
        timeouts = [i.call.timeout_s for i in batch if i.call.timeout_s is not None]
        self._channel.deadline = time.monotonic() + min(timeouts) if timeouts else None

    def _call(self, function: Callable[..., Any], batch: list[_Input]) -> list[Any]:
        """Call the function once with a list per parameter; its list of results."""
        parameters = inspect.signature(function).parameters
        args: list[list[Any]] = []
        kwargs: dict[str, list[Any]] = {}
        for name, parameter in parameters.items():
            column = [item.arguments.arguments[name]  # type: ignore[union-attr]
                      for item in batch]
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                kwargs[name] = column
            else:
                args.append(column)
        value = function(*args, **kwargs)
        if inspect.iscoroutine(value):
            value = self._event_loop().run_until_complete(value)
        if not isinstance(value, list) or len(value) != len(batch):
            got = (f"a list of {len(value)}" if isinstance(value, list)
                   else f"{type(value).__name__}")
            raise InvalidError(
                f"{self._label(batch[0])} is batched: it must return a list with one "
                f"element per input, {len(batch)} for this batch, but it returned {got}. "
                "Return a list as long as its input lists.")
        return value

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    def _label(self, item: _Input) -> str:
        method = item.call.method
        return self._target.tag + (f".{method}" if method else "")


def _note_lists(function: Callable[..., Any], exc: Exception) -> None:
    """A TypeError from a function whose parameters don't all say they take lists is
    likely code written for one value (``x + 1``): say that each parameter is a list."""
    if isinstance(exc, TypeError) and not takes_lists(function):
        exc.add_note("coldsnap: under @coldsnap.batched each parameter receives a list of "
                     "the callers' values (one element per input), and the function "
                     "returns a list as long")
