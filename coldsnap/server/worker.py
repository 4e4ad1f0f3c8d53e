"""A live container as the server sees it: its channel, its logs, the calls it runs
(several at once for a ``@coldsnap.concurrent`` function)."""

from __future__ import annotations

import dataclasses
import enum
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from coldsnap.engine import Container
from coldsnap.server.calls import Call
from coldsnap.server.channel import ControlChannel, LogPump
from coldsnap.server.errors import Reply
from coldsnap.wire import control
from coldsnap.wire.container import CTRL_OUT_ENV
from coldsnap.wire.errors import BAD_REQUEST, UNAVAILABLE, error_header
from coldsnap.wire.framing import ChannelClosed, ProtocolError
from coldsnap.wire.log_tags import untag_line

# Requests a container may have in flight at once (each holds a server thread).
MAX_REQUESTS_IN_FLIGHT = 64

# (request header, blob) -> reply: the API, for a container's requests.
ContainerRequests = Callable[[dict[str, Any], bytes | None], Reply]
# (line, level, logger): a note of the server's about a container, for the app's log and
# the server's (LogBook.note, bound to the app).
NoteLine = Callable[[str, int, logging.Logger], None]
LOG_LINES_ABOVE = "its log lines are above"  # a dead container's: they reach the caller


def exit_words(code: int) -> str:
    """``exit status 137, killed by signal 9 (SIGKILL)``: a status above 128 is the
    container's init reporting its child's signal; a negative one is Python's way of
    saying the init itself was killed (``killed by signal 9 (SIGKILL)``: no status)."""
    number = -code if code < 0 else code - 128
    try:
        name = signal.Signals(number).name
    except ValueError:  # no signal: the container's own exit status
        return f"exit status {code}"
    if code < 0:
        return f"killed by signal {number} ({name})"
    return f"exit status {code}, killed by signal {number} ({name})"


logger = logging.getLogger(__name__)


class BootFailed(Exception):
    """The container said ``boot_failed`` (user code raised) or died before it was ready."""

    def __init__(self, message: str, blob: bytes | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.blob = blob
        self.logs: list[str] = []  # what the container printed: the caller sees it


class BootTimedOut(BootFailed):
    """The container said nothing of what ``Worker.expect`` waited for within its time."""

    def __init__(self, message: str, container_id: str) -> None:
        super().__init__(message)
        self.container_id = container_id


class CallEnd(enum.Enum):
    RESULT = "result"  # the container answered (a value or the user's exception)
    DIED = "died"
    TIMED_OUT = "timed_out"


@dataclasses.dataclass(frozen=True)
class CallResult:
    """How ``Worker.run_call`` ended: with ``RESULT``, ``ok`` and the blob (the value, or
    the user's exception) are the container's; with ``DIED``, ``message`` says why."""

    end: CallEnd
    ok: bool = False
    blob: bytes | None = None
    message: str = ""
    # With DIED: what to read or do, after the call is named (worker.death_message's end).
    detail: str = ""
    # Limits the container reached during a call that raised (words for the caller).
    limits: tuple[str, ...] = ()
    summary: str = ""  # a failed call's exception in one line (control.Result.summary)
    traceback: str = ""  # a failed call's traceback text (control.Result.traceback)


class Worker:
    """One container plus its pipes; ``id`` is the container's (in logs, in resume)."""

    def __init__(
        self, container: Container, log_line: Callable[[Worker, str], None],
        on_exit: Callable[[Worker], None] | None = None, max_payload: int | None = None,
        requests: ContainerRequests | None = None,
        log_note: NoteLine | None = None, max_inputs: int = 1,
    ) -> None:
        self.container = container
        self.id = container.id
        self.channel = ControlChannel(container.ctrl_in, container.ctrl_out, max_payload)
        self.max_payload = max_payload
        self.max_inputs = max_inputs  # calls it may run at once; the runtime is told
        self._requests = requests
        # Requests in flight (a thread each): bounded, a container can't pile them up.
        self._request_slots = threading.BoundedSemaphore(MAX_REQUESTS_IN_FLIGHT)
        self.running: dict[str, Call] = {}  # call id -> the calls it runs now
        self.calls_served = 0
        self.boot_id = 0
        self.boot_timings: dict[str, float] = {}
        # Web endpoint name -> its port at container.address (from ``ready``).
        self.web_ports: dict[str, int] = {}
        self.idle_since = time.monotonic()
        # Lines printed while no call runs (boot, hooks), handed to the next call.
        self.pending_logs: deque[str] = deque(maxlen=2000)
        self.exited = threading.Event()
        self._log_line = log_line
        # Without a note path (tests), notes join the container's lines.
        self._log_note: NoteLine = log_note or (lambda line, _level, _logger: log_line(self, line))
        self._on_exit = on_exit
        # Calls waiting for their results: whichever of them waits reads the pipe for
        # all (see _await_result), as the runtime's Channel does on its end.
        self._results = threading.Condition()
        self._reading = False
        self._arrived: dict[str, tuple[dict[str, Any], bytes | None]] = {}
        self._broken: BaseException | None = None  # the pipe's end: every waiter raises it
        # HTTP requests in flight (leases): their code may call other functions, whose
        # requests someone must read from the pipe while no call's thread does.
        self._leases = 0
        self._lease_reader = False
        self.pump = LogPump(container.logs, self._line, self._eof, container.id)

    def _line(self, text: str) -> None:
        call_id, text = untag_line(text)
        line = f"[{self.id}] {text}"
        self._to_caller(line, call_id)
        self._log_line(self, line)

    def _to_caller(self, line: str, call_id: str | None = None) -> None:
        # A concurrent input's lines carry its call id; an untagged line printed while
        # several calls run can't be told apart: each of them gets it.
        call = self.running.get(call_id) if call_id is not None else None
        calls = [call] if call is not None else list(self.running.values())
        for call in calls:
            call.add_log(line)
        if not calls:
            self.pending_logs.append(line)

    def note(self, text: str, to_caller: bool = True, level: int = logging.INFO,
             logger: logging.Logger = logger) -> None:
        """A line from the server about this container, shown like the container's own
        (``[cs-abc] coldsnap: TEXT``), and in the server's log at ``level`` under
        ``logger`` (the caller's: whose note it is).

        ``to_caller=False`` keeps it from the caller (nobody's call is waiting).
        """
        line = f"[{self.id}] coldsnap: {text}"
        if to_caller:
            self._to_caller(line)
        self._log_note(line, level, logger)

    def _eof(self) -> None:
        self.exited.set()
        if self._on_exit is not None:
            self._on_exit(self)

    @property
    def alive(self) -> bool:
        return not self.exited.is_set() and self.container.poll() is None

    def expect(self, message_types: set[str], timeout: float
               ) -> tuple[dict[str, Any], bytes | None]:
        """Wait for a message of one of ``message_types``; BootFailed on ``boot_failed``,
        death or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                header, blob = self.channel.recv(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise BootTimedOut(
                    f"container {self.id} did not say {'/'.join(sorted(message_types))} within "
                    f"{timeout:.0f} s; raise COLDSNAP_BOOT_TIMEOUT_S if the boot is slow",
                    self.id) from None
            except ProtocolError as exc:
                raise BootFailed(self.garbled_message(f"while booting: {exc}")) from None
            except (ChannelClosed, OSError) as exc:
                raise BootFailed(self.death_message("before it was ready", exc)) from None
            message_type = header.get(control.TYPE)
            if message_type in message_types:
                return header, blob
            if message_type == control.BOOT_FAILED:
                stage = header.get(control.STAGE, "boot")
                raise BootFailed(f"container {self.id} failed to boot in {stage}: "
                                 f"{header.get(control.MESSAGE, '')}", blob)
            self.note(f"ignored an unexpected {message_type!r} message while booting",
                      level=logging.WARNING)

    def death_message(self, when: str, cause: object = "") -> str:
        """``container cs-… exited before it was ready (exit status 1); its log lines
        are above``."""
        return f"{self.death_words(when, cause)}; {LOG_LINES_ABOVE}"

    def death_words(self, when: str, cause: object = "") -> str:
        """``container cs-… exited WHEN (exit status 137, killed by signal 9)``, with the
        limits it reached; ``cause`` (what the server saw: a closed pipe) only while the
        container still runs, as the exit status says more."""
        self.pump.sync()
        code = self.container.wait(2)
        status = exit_words(code) if code is not None else (
            f"still running; {cause}" if cause else "still running")
        limits = self.limits_reached()
        if limits:
            status += ": " + "; ".join(limits)
        return f"container {self.id} exited{' ' + when if when else ''} ({status})"

    def limits_reached(self) -> list[str]:
        """Words for the limits the container hit since the last ask, each also noted in
        the call's log lines and the app's log."""
        words = self.container.limits_reached()
        for text in words:
            self.note(text, level=logging.WARNING)
        return words

    def garbled_message(self, what: str) -> str:
        return (f"container {self.id} wrote a malformed message to its control pipe {what}; "
                f"it was stopped. Only coldsnap's runtime may write to ${CTRL_OUT_ENV}")

    def run_call(self, call: Call) -> CallResult:
        """Send ``call`` and wait for its result, at most ``call.timeout_s``; safe to call
        from several threads at once (each gets its own call's result)."""
        call.attempts += 1
        call.task_id = self.id
        while self.pending_logs:
            call.add_log(self.pending_logs.popleft())
        self.running[call.id] = call
        try:
            # The runtime checks a result against the limit before sending it, so an
            # oversized result is an error the caller can read, not a stopped container.
            self.channel.send(control.CallInput(
                call.id, method=call.method, max_result_bytes=self.max_payload,
                timeout_s=call.timeout_s, stream=call.stream,
                max_inputs=self.max_inputs).to_header(), call.args)
            return self._await_result(call)
        except TimeoutError:
            return CallResult(CallEnd.TIMED_OUT)
        except ProtocolError as exc:
            return CallResult(CallEnd.DIED, message=(
                f"container {self.id} wrote a malformed message to its control pipe "
                f"({exc}) and was stopped"), detail=f"only coldsnap's runtime may write to "
                f"${CTRL_OUT_ENV}")
        except (ChannelClosed, OSError, ValueError) as exc:  # ValueError: pipe closed here
            return CallResult(CallEnd.DIED, message=self.death_words("", exc),
                              detail=LOG_LINES_ABOVE)
        finally:
            self.pump.sync()
            self.running.pop(call.id, None)
            self.calls_served += 1
            self.idle_since = time.monotonic()

    def _await_result(self, call: Call) -> CallResult:
        """Wait for ``call``'s result; while no other call's thread reads the pipe, read
        it: route results to their calls, answer the container's requests."""
        deadline = time.monotonic() + call.timeout_s
        while True:
            with self._results:
                while True:
                    arrived = self._arrived.pop(call.id, None)
                    if arrived is not None:
                        return self._call_result(*arrived)
                    if self._broken is not None:
                        raise self._broken
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    if not self._reading:
                        self._reading = True
                        break
                    self._results.wait(left)
            try:
                self._read_one(left)
            except TimeoutError:
                continue  # our deadline: the loop above says so
            except (ChannelClosed, ProtocolError, OSError, ValueError) as exc:
                with self._results:
                    self._broken = exc
                raise
            finally:
                with self._results:
                    self._reading = False
                    self._results.notify_all()

    def lease_started(self) -> None:
        """An HTTP request took an input slot: read the pipe for it while it runs (its
        code may call other functions) and no call's thread is reading."""
        with self._results:
            self._leases += 1
            if self._lease_reader:
                return
            self._lease_reader = True
        threading.Thread(target=self._read_for_leases, daemon=True,
                         name=f"lease-reader-{self.id}").start()

    def lease_ended(self) -> None:
        with self._results:
            self._leases -= 1
            self._results.notify_all()

    def _read_for_leases(self) -> None:
        """Read messages (the container's requests, results of calls beside the
        requests) until no lease is left; take turns with calls' threads."""
        while True:
            with self._results:
                while self._reading and self._leases > 0 and self._broken is None:
                    self._results.wait(0.5)
                if self._leases <= 0 or self._broken is not None:
                    self._lease_reader = False
                    return
                self._reading = True
            try:
                self._read_one(0.25)  # short: a reader that outlived its leases leaves
            except TimeoutError:
                pass
            except (ChannelClosed, ProtocolError, OSError, ValueError) as exc:
                with self._results:
                    self._broken = exc
            finally:
                with self._results:
                    self._reading = False
                    self._results.notify_all()

    def _read_one(self, timeout: float) -> None:
        header, blob = self.channel.recv(timeout)
        message_type = header.get(control.TYPE)
        if message_type == control.RESULT:
            call_id = control.Result.from_header(header).call_id
            if call_id in self.running:
                with self._results:
                    self._arrived[call_id] = (header, blob)
                return
            # Expected after an adoption (fleet/takeover.py): the answer to the call it ran
            # when the control plane before this one stopped. No caller's business.
            self.note(f"ignored the late result of call {call_id}, which no caller waits "
                      "for (a call from before a control-plane restart, or one ended)",
                      to_caller=False)
            return
        elif message_type == control.ITEM:  # a generator's value: to its reader now
            call = self.running.get(control.Item.from_header(header).call_id)
            if call is not None:
                call.add_item(blob)
            return
        elif message_type == control.REQUEST and self._requests is not None:
            self._start_request(control.Request.from_header(header), blob)
            return
        self.note(f"ignored an unexpected {message_type!r} message during a call")

    def _call_result(self, header: dict[str, Any], blob: bytes | None) -> CallResult:
        result = control.Result.from_header(header)
        # A call that raised may have met a limit that killed no process (a refused
        # fork, a full disk): say so.
        limits = () if result.ok else tuple(self.limits_reached())
        return CallResult(CallEnd.RESULT, result.ok, blob, limits=limits,
                          summary=result.summary, traceback=result.traceback)

    def _start_request(self, request: control.Request, blob: bytes | None) -> None:
        """Answer a request the container sent (its code calling another function) in a
        thread of its own: a call may take long."""
        if not self._request_slots.acquire(blocking=False):
            self._reply(request, error_header(UNAVAILABLE, (
                f"container {self.id} has {MAX_REQUESTS_IN_FLIGHT} requests in flight; "
                "wait for some to finish")), None)
            return
        threading.Thread(target=self._answer_request, args=(request, blob), daemon=True,
                         name=f"request-{self.id}").start()

    def _answer_request(self, request: control.Request, blob: bytes | None) -> None:
        assert self._requests is not None
        try:
            if request.header is None:
                reply, reply_blob = error_header(
                    BAD_REQUEST, "a request without a request header"), None
            else:
                reply, reply_blob = self._requests(request.header, blob)
            self._reply(request, reply, reply_blob)
        finally:
            self._request_slots.release()

    def _reply(self, request: control.Request, reply: dict[str, Any],
               blob: bytes | None) -> None:
        try:
            self.channel.send(control.Reply(request.request_id, reply).to_header(), blob)
        except (OSError, ValueError):  # ValueError: the engine closed the pipe already
            pass  # the container is gone: nobody waits for the answer

    def shutdown(self, grace_s: float = 5.0) -> None:
        """Ask for a clean exit (the ``exit`` hooks run), then kill after ``grace_s``."""
        try:
            self.channel.send({control.TYPE: control.SHUTDOWN})
        except OSError:
            pass
        if self.container.wait(grace_s) is None:
            self.note(f"did not exit within {grace_s:.0f} s of shutdown; killing it",
                      level=logging.WARNING)
        self.kill()

    def kill(self) -> None:
        # Stop reading before the engine closes the pipe under the pump's select.
        self.pump.stop()
        self.container.kill()
