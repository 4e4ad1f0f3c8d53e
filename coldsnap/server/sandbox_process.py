"""One sandbox's running container as the server sees it: its processes' output,
stdin and exits, spoken over the agent's pipes (wire/sandbox.py)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap.engine import Container
from coldsnap.server.errors import ApiError
from coldsnap.wire import sandbox as wire
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND
from coldsnap.wire.framing import ChannelClosed, ProtocolError, read_message, write_message

# Output a process may leave unread on the server, per stream, and all of a sandbox's
# processes together; past it the oldest bytes of the stream written to go (a reader at
# an offset before them gets what is left).
MAX_BUFFERED = 64 * 1024 * 1024
MAX_SANDBOX_BUFFERED = 256 * 1024 * 1024
# The largest message the agent sends (its chunks are 64 KiB): a container that sends
# more is not the agent talking, and the sandbox is ended.
MAX_AGENT_BLOB = 1024 * 1024
# The most one read answers with (the reader asks again for the rest).
MAX_READ = 4 * 1024 * 1024
# How often the watcher looks at timeouts.
WATCH_S = 0.25

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ProcessState:
    """What one process printed (from ``dropped`` on), whether each stream ended, its exit."""

    stdout: bytearray = dataclasses.field(default_factory=bytearray)
    stderr: bytearray = dataclasses.field(default_factory=bytearray)
    dropped: dict[str, int] = dataclasses.field(default_factory=lambda: {"stdout": 0,
                                                                         "stderr": 0})
    ended: set[str] = dataclasses.field(default_factory=set)
    returncode: int | None = None
    deadline: float | None = None  # exec(timeout=): killed past it

    def append(self, stream: str, data: bytes, room: int = MAX_BUFFERED) -> int:
        """Keep ``data``, dropping the stream's oldest bytes past ``room`` (at most
        MAX_BUFFERED); how many bytes more are kept now."""
        buffer = self.stdout if stream == wire.STDOUT else self.stderr
        before = len(buffer)
        buffer += data
        limit = max(0, min(room, MAX_BUFFERED))
        if len(buffer) > limit:
            extra = len(buffer) - limit
            del buffer[:extra]
            self.dropped[stream] += extra
        return len(buffer) - before

    def read(self, stream: str, offset: int) -> bytes:
        buffer = self.stdout if stream == wire.STDOUT else self.stderr
        start = max(0, offset - self.dropped[stream])
        return bytes(buffer[start:start + MAX_READ])

    def size(self, stream: str) -> int:
        buffer = self.stdout if stream == wire.STDOUT else self.stderr
        return self.dropped[stream] + len(buffer)

    def finish(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
        self.ended.update(wire.STREAMS)


class SandboxContainer:
    """A sandbox's container, its processes, and how it ended (``ended_by``)."""

    def __init__(self, sandbox_id: str, container: Container, timeout_s: float,
                 idle_timeout_s: float | None, log: Callable[[str], None]) -> None:
        self.id = sandbox_id
        self.container = container
        self.created_at = time.time()
        self._deadline = time.monotonic() + timeout_s
        self._idle_timeout = idle_timeout_s
        self._last_active = time.monotonic()
        self._log = log
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        # The entrypoint's streams exist from the start: without one they stay open, empty,
        # until the sandbox ends (as Modal's sb.stdout does).
        self.procs: dict[str, ProcessState] = {wire.ENTRYPOINT: ProcessState()}
        self._next = 0
        self._buffered = 0  # output bytes kept, all processes together
        self.returncode: int | None = None
        self.ended_by: str | None = None  # wire.TERMINATED, wire.TIMED_OUT, or "exit"
        for target, name in ((self._read_agent, "agent"), (self._read_logs, "logs"),
                             (self._watch, "watch")):
            threading.Thread(target=target, name=f"{sandbox_id}-{name}", daemon=True).start()

    # the agent's pipes

    def _send(self, header: dict[str, Any], blob: bytes | None = None) -> None:
        """One message to the agent; OSError once its pipe is gone (or closed here)."""
        with self._send_lock:
            try:
                write_message(self.container.ctrl_in, header, blob)
            except ValueError:  # the container was killed: its pipe closed
                raise BrokenPipeError(f"sandbox {self.id} has ended") from None

    def _read_agent(self) -> None:
        try:
            while True:
                header, blob = read_message(self.container.ctrl_out, MAX_AGENT_BLOB)
                self._on_message(header, blob)
        except (ChannelClosed, ProtocolError, OSError, ValueError, TypeError, KeyError):
            pass  # the pipe closed, or something other than the agent wrote to it
        self._end(wire.KILLED_RETURNCODE, None)

    def _on_message(self, header: dict[str, Any], blob: bytes | None) -> None:
        kind, pid_id = header.get("type"), str(header.get("id"))
        with self._cond:
            proc = self.procs.get(pid_id)
            if proc is None:
                return
            if kind == wire.OUTPUT and blob:
                stream = wire.STDERR if header.get("stream") == wire.STDERR else wire.STDOUT
                room = MAX_SANDBOX_BUFFERED - self._buffered + len(getattr(proc, stream))
                self._buffered += proc.append(stream, blob, room)
            elif kind == wire.FAILED:
                proc.append(wire.STDERR, f"coldsnap: could not start {header.get('message')}\n"
                            .encode())
                proc.finish(127)  # as a shell answers a command it can't run
            elif kind == wire.EXITED:
                for words in self._limits_reached():  # why it was killed, say
                    proc.append(wire.STDERR, f"coldsnap: {words}\n".encode())
                proc.finish(int(header.get("returncode", -1)))
            self._last_active = time.monotonic()
            self._cond.notify_all()
        if pid_id == wire.ENTRYPOINT and proc.returncode is not None:
            self._end(proc.returncode, "exit")

    def _limits_reached(self) -> list[str]:
        try:
            return self.container.limits_reached()
        except OSError:  # its cgroup went with it
            return []

    def _read_logs(self) -> None:
        """What the agent and the container's set-up print: the app's log."""
        try:
            for raw in iter(self.container.logs.readline, b""):
                self._log(f"[{self.id}] {raw.decode(errors='replace').rstrip()}")
        except (OSError, ValueError):
            pass  # the container was killed and its pipe closed

    def _watch(self) -> None:
        while self.returncode is None:
            now = time.monotonic()
            if now > self._deadline:
                self._log(f"[{self.id}] coldsnap: the sandbox reached its timeout; killed")
                self._end(wire.KILLED_RETURNCODE, wire.TIMED_OUT)
                return
            idle = self._idle_timeout
            if idle is not None and now - self._last_active > idle and not self._busy():
                self._log(f"[{self.id}] coldsnap: the sandbox was idle for {idle:g} s "
                          "(idle_timeout); terminated")
                self._end(wire.KILLED_RETURNCODE, wire.TERMINATED)
                return
            for pid_id, proc in list(self.procs.items()):
                if proc.returncode is None and proc.deadline is not None and now > proc.deadline:
                    proc.deadline = None
                    try:
                        self._send({"type": wire.KILL, "id": pid_id})
                    except OSError:
                        return  # the sandbox is ending: _read_agent sees it
            time.sleep(WATCH_S)

    def _busy(self) -> bool:
        """A process other than a never-ending entrypoint runs: not idle."""
        return any(proc.returncode is None for pid_id, proc in self.procs.items()
                   if pid_id != wire.ENTRYPOINT)

    def _end(self, returncode: int, why: str | None) -> None:
        with self._cond:
            first = self.returncode is None
            if first:
                self.returncode = returncode
                self.ended_by = why or wire.TERMINATED
            for proc in self.procs.values():
                proc.finish(wire.KILLED_RETURNCODE)
            self._cond.notify_all()
        if first:  # one kill: the container's clean-ups run once
            self.container.kill()

    # what the API asks

    def start(self, pid_id: str | None, argv: list[str], cwd: str | None,
              env: dict[str, str], timeout_s: float | None) -> str:
        """Start a process (the entrypoint when ``pid_id`` is ENTRYPOINT); its id."""
        with self._cond:
            if self.returncode is not None:
                raise ApiError(BAD_REQUEST, f"sandbox {self.id} has finished "
                               f"({self.describe_end()}): it runs no more commands; create "
                               "another with Sandbox.create()")
            if pid_id is None:
                self._next += 1
                pid_id = f"p{self._next}"
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            self.procs[pid_id] = ProcessState(deadline=deadline)
            self._last_active = time.monotonic()
        try:
            self._send({"type": wire.EXEC, "id": pid_id, "argv": argv, "cwd": cwd, "env": env})
        except OSError:
            self._end(wire.KILLED_RETURNCODE, None)
        return pid_id

    def process(self, pid_id: str) -> ProcessState:
        proc = self.procs.get(pid_id)
        if proc is None:
            raise ApiError(NOT_FOUND, f"sandbox {self.id} has no process {pid_id!r}")
        return proc

    def read(self, pid_id: str, stream: str, offset: int, wait_s: float) -> tuple[bytes, bool]:
        """Output from ``offset`` on, waiting up to ``wait_s`` for some; True at its end."""
        proc = self.process(pid_id)
        deadline = time.monotonic() + wait_s
        with self._cond:
            while proc.size(stream) <= offset and stream not in proc.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            data = proc.read(stream, offset)
            return data, stream in proc.ended and offset + len(data) >= proc.size(stream)

    def write(self, pid_id: str, data: bytes, eof: bool) -> None:
        proc = self.process(pid_id)
        if proc.returncode is not None:
            return  # as a pipe to a process that exited: nobody reads it
        self._last_active = time.monotonic()
        try:
            self._send({"type": wire.STDIN, "id": pid_id, "eof": eof}, data or None)
        except OSError:
            pass

    def wait(self, pid_id: str | None, wait_s: float) -> int | None:
        """The return code of a process (None: of the sandbox) once it ends, within
        ``wait_s``; None if it still runs."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                code = self.returncode if pid_id is None else self.process(pid_id).returncode
                left = deadline - time.monotonic()
                if code is not None or left <= 0:
                    return code
                self._cond.wait(left)

    def terminate(self) -> None:
        self._end(wire.KILLED_RETURNCODE, wire.TERMINATED)

    def describe_end(self) -> str:
        if self.ended_by == wire.TIMED_OUT:
            return "it reached its timeout"
        if self.ended_by == wire.TERMINATED:
            return "it was terminated"
        return f"its entrypoint exited with code {self.returncode}"
