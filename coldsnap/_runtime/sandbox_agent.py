"""The process a sandbox container runs: it starts, feeds and reaps the sandbox's
processes as the server asks over the control pipes (wire/sandbox.py).

Each process gets pipes for stdin, stdout and stderr; a thread per output stream
forwards what it reads, chunk by chunk and in order, and the process's exit follows
its last output. The agent ends when the server closes its pipe (the sandbox was
terminated): it kills what still runs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from typing import Any, BinaryIO

from coldsnap.wire import sandbox as wire
from coldsnap.wire.container import CTRL_IN_ENV, CTRL_OUT_ENV
from coldsnap.wire.framing import ChannelClosed, read_message, write_message

CHUNK = 64 * 1024
PR_SET_PDEATHSIG = 1
# coldsnap's own variables: the sandbox's processes see the image's, the secrets' and
# their own, not the agent's plumbing.
_PRIVATE_PREFIX = "COLDSNAP_"


class Agent:
    def __init__(self, ctrl_in: BinaryIO, ctrl_out: BinaryIO) -> None:
        self._in = ctrl_in
        self._out = ctrl_out
        self._send_lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_PREFIX)}

    def send(self, header: dict[str, Any], blob: bytes | None = None) -> None:
        with self._send_lock:
            write_message(self._out, header, blob)

    def serve(self) -> None:
        handlers = {wire.EXEC: self._exec, wire.STDIN: self._stdin, wire.KILL: self._kill}
        try:
            while True:
                header, blob = read_message(self._in)
                handler = handlers.get(header.get("type", ""))
                if handler is not None:
                    handler(header, blob)
        except (ChannelClosed, OSError):
            pass  # the server is done with this sandbox
        finally:
            for proc in list(self._procs.values()):
                _kill_group(proc)

    def _exec(self, header: dict[str, Any], blob: bytes | None) -> None:
        pid_id = str(header["id"])
        try:
            proc = subprocess.Popen(
                header["argv"], cwd=header.get("cwd") or None,
                env={**self.env, **(header.get("env") or {})},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # its own group: a kill reaches its children
                preexec_fn=_die_with_agent)
        except OSError as exc:
            self.send({"type": wire.FAILED, "id": pid_id,
                       "message": f"{header['argv'][0]}: {exc.strerror or exc}"})
            return
        self._procs[pid_id] = proc
        readers = [threading.Thread(target=self._forward, args=(pid_id, name, stream),
                                    daemon=True)
                   for name, stream in ((wire.STDOUT, proc.stdout), (wire.STDERR, proc.stderr))]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._reap, args=(pid_id, proc, readers), daemon=True).start()

    def _forward(self, pid_id: str, name: str, stream: Any) -> None:
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                return
            self.send({"type": wire.OUTPUT, "id": pid_id, "stream": name}, chunk)

    def _reap(self, pid_id: str, proc: subprocess.Popen[bytes],
              readers: list[threading.Thread]) -> None:
        returncode = proc.wait()
        for reader in readers:  # its output first; a child that kept the pipe: 1 s
            reader.join(1.0)
        self._procs.pop(pid_id, None)
        self.send({"type": wire.EXITED, "id": pid_id, "returncode": returncode})

    def _stdin(self, header: dict[str, Any], blob: bytes | None) -> None:
        proc = self._procs.get(str(header["id"]))
        if proc is None or proc.stdin is None:
            return
        try:
            if blob:
                proc.stdin.write(blob)
                proc.stdin.flush()
            if header.get("eof"):
                proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # it exited, or closed its stdin: what it never reads is dropped

    def _kill(self, header: dict[str, Any], blob: bytes | None) -> None:
        proc = self._procs.get(str(header["id"]))
        if proc is not None:
            _kill_group(proc)


def _die_with_agent() -> None:
    """In the child, before exec: killed when the agent dies. A container's pid namespace
    does that for the criu engine; the none engine's plain processes need this."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> None:
    ctrl_in = os.fdopen(int(os.environ[CTRL_IN_ENV]), "rb", buffering=0)
    ctrl_out = os.fdopen(int(os.environ[CTRL_OUT_ENV]), "wb")
    for fd in (ctrl_in.fileno(), ctrl_out.fileno()):
        os.set_inheritable(fd, False)  # the sandbox's processes must not hold them
    Agent(ctrl_in, ctrl_out).serve()
    sys.exit(0)


if __name__ == "__main__":
    main()
