"""The container protocol: the messages on a container's control pipes.

docs/protocol.md describes each message and when it is sent; this module is
what the server (``server/worker.py``, ``server/boot.py``) and the runtime
(``_runtime/``) both build and read them with. Every message is a
``framing`` message whose header names its type under ``TYPE``. Example::

    header = Resume(container_id="cs-1", env={}, seed=7, restored=True).to_header()
    assert Resume.from_header(header).seed == 7
"""

from __future__ import annotations

import dataclasses
from typing import Any

# The header field that names a message's type (one of the constants below).
TYPE = "type"

# Message types, container -> server.
READY_TO_SNAPSHOT = "ready_to_snapshot"  # TIMINGS, WARNINGS; then it waits for RESUME
SNAPSHOT_REFUSED = "snapshot_refused"  # MESSAGE; then it waits for RESUME
READY = "ready"  # TIMINGS, WEB: serving
BOOT_FAILED = "boot_failed"  # STAGE, MESSAGE; blob: the exception
RESULT = "result"  # Result; blob: the value or the exception
ITEM = "item"  # Item; blob: one value a generator call yielded (its RESULT comes last)
REQUEST = "request"  # Request; blob: the API request's

# Message types, server -> container.
RESUME = "resume"  # Resume
CALL = "call"  # CallInput; blob: the arguments
SHUTDOWN = "shutdown"
REPLY = "reply"  # Reply; blob: the API reply's

FROM_CONTAINER = frozenset({READY_TO_SNAPSHOT, SNAPSHOT_REFUSED, READY, BOOT_FAILED, RESULT,
                            ITEM, REQUEST})
TO_CONTAINER = frozenset({RESUME, CALL, SHUTDOWN, REPLY})

# Header fields (besides TYPE). The dataclasses below own the fields of their messages.
TIMINGS = "timings"  # step name -> seconds (wire/timings.py)
SUMMARY = "summary"  # in a failed RESULT: the exception in one line
SUMMARY_CHARS = 500
# In a failed RESULT: the traceback as text, its last TRACEBACK_CHARS, for the app's log
# where nobody reads the result (a scheduled run)
TRACEBACK = "traceback"
TRACEBACK_CHARS = 8000
# In READY_TO_SNAPSHOT: what the snapshot keeps that a restore can't bring back as it
# was (wire/snapshot_warnings.py).
WARNINGS = "warnings"
WEB = "web"  # in READY: web endpoint name -> the port it is served on in the container
MESSAGE = "message"  # what went wrong, for a person
STAGE = "stage"  # the boot stage that failed ("import app.py", a hook's label)
CONTAINER_ID = "container_id"
ENV = "env"
SEED = "seed"
RESTORED = "restored"
CALL_ID = "call_id"
METHOD = "method"
MAX_RESULT_BYTES = "max_result_bytes"
TIMEOUT_S = "timeout_s"
MAX_INPUTS = "max_inputs"
STREAM = "stream"
OK = "ok"
REQUEST_ID = "request_id"
REQUEST_HEADER = "request"  # in a REQUEST: the API request's header (docs/server.md)
REPLY_HEADER = "reply"  # in a REPLY: the API reply's header


@dataclasses.dataclass(frozen=True)
class Resume:
    """``resume``: continue after the snapshot handshake, as container ``container_id``.

    env: variables to set (None: unset them); seed: reseeds the RNGs; restored: this
    process was restored from a snapshot (its import happened in another boot).
    """

    container_id: str = ""
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    restored: bool = False

    def to_header(self) -> dict[str, Any]:
        return {TYPE: RESUME, CONTAINER_ID: self.container_id, ENV: self.env,
                SEED: self.seed, RESTORED: self.restored}

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Resume:
        env = header.get(ENV) or {}
        seed = header.get(SEED)
        return cls(
            container_id=str(header.get(CONTAINER_ID) or ""),
            env={str(name): None if value is None else str(value) for name, value in env.items()},
            seed=None if seed is None else int(seed),
            restored=bool(header.get(RESTORED)),
        )


@dataclasses.dataclass(frozen=True)
class CallInput:
    """``call``: run one input (the arguments travel as the blob).

    method: None for a function. max_result_bytes: a bigger result is sent as an
    error instead. timeout_s: when the call times out; calls it makes to other
    functions wait no longer. stream: the caller called ``remote_gen``: the function
    must be a generator, and each value it yields goes back as an ``item`` at once.
    max_inputs: how many inputs the server may send this container at once
    (``@coldsnap.concurrent``): above 1 they run concurrently.
    """

    call_id: str
    method: str | None = None
    max_result_bytes: int | None = None
    timeout_s: float | None = None
    stream: bool = False
    max_inputs: int = 1

    def to_header(self) -> dict[str, Any]:
        header = {TYPE: CALL, CALL_ID: self.call_id, METHOD: self.method,
                  MAX_RESULT_BYTES: self.max_result_bytes, TIMEOUT_S: self.timeout_s}
        if self.stream:  # absent otherwise: a plain call's message stays as it was
            header[STREAM] = True
        if self.max_inputs > 1:  # likewise
            header[MAX_INPUTS] = self.max_inputs
        return header

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> CallInput:
        method = header.get(METHOD)
        limit = header.get(MAX_RESULT_BYTES)
        timeout = header.get(TIMEOUT_S)
        max_inputs = header.get(MAX_INPUTS)
        return cls(
            call_id=str(header.get(CALL_ID)),
            method=None if method is None else str(method),
            max_result_bytes=limit if isinstance(limit, int) else None,
            timeout_s=timeout if isinstance(timeout, int | float) else None,
            stream=header.get(STREAM) is True,
            max_inputs=max_inputs if isinstance(max_inputs, int) and max_inputs > 1 else 1,
        )


@dataclasses.dataclass(frozen=True)
class Result:
    """``result``: how call ``call_id`` ended; the blob is its value (``ok``) or the
    exception it raised."""

    call_id: str
    ok: bool
    # A failed call's exception in one line ("TypeError: ..."), for logs that can't
    # unpickle it (the server never does); at most SUMMARY_CHARS.
    summary: str = ""
    traceback: str = ""  # a failed call's traceback text; its last TRACEBACK_CHARS

    def to_header(self) -> dict[str, Any]:
        header = {TYPE: RESULT, CALL_ID: self.call_id, OK: self.ok}
        if self.summary:
            header[SUMMARY] = self.summary[:SUMMARY_CHARS]
        if self.traceback:
            header[TRACEBACK] = self.traceback[-TRACEBACK_CHARS:]
        return header

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Result:
        call_id = header.get(CALL_ID)  # the container is untrusted: no coercion
        summary = header.get(SUMMARY)
        traceback = header.get(TRACEBACK)
        return cls(call_id=call_id if isinstance(call_id, str) else "",
                   ok=bool(header.get(OK)),
                   summary=summary[:SUMMARY_CHARS] if isinstance(summary, str) else "",
                   traceback=traceback[-TRACEBACK_CHARS:] if isinstance(traceback, str)
                   else "")


@dataclasses.dataclass(frozen=True)
class Item:
    """``item``: one value the generator of call ``call_id`` yielded (the blob), sent
    as soon as it is yielded; the call's ``result`` follows the last one."""

    call_id: str

    def to_header(self) -> dict[str, Any]:
        return {TYPE: ITEM, CALL_ID: self.call_id}

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Item:
        call_id = header.get(CALL_ID)
        return cls(call_id=call_id if isinstance(call_id, str) else "")


@dataclasses.dataclass(frozen=True)
class Request:
    """``request``: user code in a call sends an API request (``header``, without a
    token) to the server; the server answers with a ``Reply`` of the same id."""

    request_id: str
    header: dict[str, Any] | None  # None: the container sent none (it gets bad_request)

    def to_header(self) -> dict[str, Any]:
        return {TYPE: REQUEST, REQUEST_ID: self.request_id, REQUEST_HEADER: self.header}

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Request:
        request = header.get(REQUEST_HEADER)
        return cls(request_id=_request_id(header),
                   header=request if isinstance(request, dict) else None)


@dataclasses.dataclass(frozen=True)
class Reply:
    """``reply``: the server's answer to the ``Request`` with ``request_id``."""

    request_id: str
    header: dict[str, Any]

    def to_header(self) -> dict[str, Any]:
        return {TYPE: REPLY, REQUEST_ID: self.request_id, REPLY_HEADER: self.header}

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> Reply:
        reply = header.get(REPLY_HEADER)
        return cls(request_id=_request_id(header), header=reply if isinstance(reply, dict) else {})


def _request_id(header: dict[str, Any]) -> str:
    return str(header.get(REQUEST_ID))


def web_ports(header: dict[str, Any]) -> dict[str, int]:
    """A ``ready`` message's web ports (endpoint name -> port); malformed entries are
    dropped: a container can't make the server misbehave by what it claims."""
    ports = header.get(WEB)
    if not isinstance(ports, dict):
        return {}
    return {str(name): port for name, port in ports.items()
            if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536}
