"""The Sandbox contract: the socket API's sandbox ops, and the agent's pipe messages.

A sandbox is a container that runs ``coldsnap._runtime.sandbox_agent`` instead of
the function runtime. The server speaks to that agent over the container's control
pipes (``framing`` messages): it asks it to start processes (``EXEC``), feeds their
stdin (``STDIN``) and kills them (``KILL``); the agent answers with their output as
it comes (``OUTPUT``, one stream per message, in order) and their exit (``EXITED``).
Clients read a process's output with ``SANDBOX_READ`` from an offset, long-polling
for more, so the bytes arrive in order and none is read twice. Example::

    client.request(SANDBOX_EXEC, sandbox_id="sb-1a2b", argv=["echo", "hi"])
"""

from __future__ import annotations

# Socket API ops (server/sandbox_api.py handles them); their names live in ops.py.
from coldsnap.wire.ops import (
    SANDBOX_CREATE,
    SANDBOX_EXEC,
    SANDBOX_GET,
    SANDBOX_LIST,
    SANDBOX_READ,
    SANDBOX_TAGS,
    SANDBOX_TERMINATE,
    SANDBOX_WAIT,
    SANDBOX_WRITE,
)

SANDBOX_OPS = frozenset({SANDBOX_CREATE, SANDBOX_EXEC, SANDBOX_READ, SANDBOX_WRITE,
                         SANDBOX_WAIT, SANDBOX_TERMINATE, SANDBOX_GET, SANDBOX_LIST,
                         SANDBOX_TAGS})
# Ops whose reply may wait long (an image build, a wait): clients keep waiting on them
# while the server answers pings.
SANDBOX_LONG_OPS = frozenset({SANDBOX_CREATE, SANDBOX_WAIT, SANDBOX_READ})

# The entrypoint's process id; exec'd processes get "p1", "p2", ...
ENTRYPOINT = "main"
STDOUT, STDERR = "stdout", "stderr"
STREAMS = (STDOUT, STDERR)
# The return code a killed sandbox reports (terminate(), its timeout): SIGKILL's, as a
# shell shows it.
KILLED_RETURNCODE = 137
# Why a sandbox ended, when it did not end by its entrypoint's exit.
TERMINATED, TIMED_OUT = "terminated", "timeout"

# Pipe messages, server -> agent (header "type").
EXEC = "exec"  # id, argv, cwd, env
STDIN = "stdin"  # id, eof; blob: bytes
KILL = "kill"  # id
# Pipe messages, agent -> server.
OUTPUT = "output"  # id, stream; blob: bytes
EXITED = "exited"  # id, returncode
FAILED = "failed"  # id, message: the process could not start (no such file...)
