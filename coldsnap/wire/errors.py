"""coldsnap's own exceptions, and the error kinds the server answers with.

A failed reply is ``{"ok": false, "error": {"kind": KIND, "message": ...}}``;
``error_from`` turns one into the exception a client raises: the user's own
exception for errors in user code, else a ``ServerError`` subclass chosen by
the kind.

Users reach the exceptions as ``coldsnap.exception.NotFoundError`` and so on
(Modal's ``modal.exception``): their ``__module__`` says so, for reprs and
tracebacks. They are defined here, in the contract, because both the client
and the server raise them.
"""

from __future__ import annotations

import builtins
from typing import Any

# The kinds of a failed reply (docs/server.md).
BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
TOO_LARGE = "too_large"
DEPLOY_FAILED = "deploy_failed"
REMOTE = "remote"  # user code raised; the exception travels as the blob
BOOT_FAILED = "boot_failed"  # user code raised while the container booted; blob as for REMOTE
CONTAINER_DIED = "container_died"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
BUSY = "busy"  # the server is at its connection or file limit; try again shortly
INTERNAL = "internal"
# A spawned call's result is gone: kept its time (COLDSNAP_CALL_RESULT_TTL_S) and removed.
EXPIRED = "expired"
# A spawned call never finished: the server stopped while it waited or ran. Not
# `unavailable`: clients retry that kind against a server that comes back, and a `get`
# of this call would answer the same forever. The caller has to call again.
INTERRUPTED = "interrupted"
# The call was cancelled (FunctionCall.cancel()) before it ended: it has no result.
CANCELLED = "cancelled"
# After these the server hangs up: the connection can't be used again.
CLOSING_KINDS = frozenset({UNAUTHORIZED, BAD_REQUEST, TOO_LARGE, BUSY})


class Error(Exception):
    """Base class of every error coldsnap raises."""


class InvalidError(Error):
    """coldsnap's API was used in a way that can't work; the message says how to fix it."""


class TimeoutError(Error, builtins.TimeoutError):  # Modal's name; also the builtin's kind
    """Base class of coldsnap's timeouts."""


class ServerError(Error):
    """The server refused a request or a call failed outside user code; ``kind`` says how."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        # A function may raise what its own call to another raised: it must unpickle.
        return type(self), (self.kind, str(self))


class NotFoundError(ServerError, LookupError):
    """No such app, function, method, call id, Dict or Queue."""


class OutputExpiredError(NotFoundError):
    """A spawned call's result was kept its time and removed (Modal's name). A
    ``NotFoundError``: code that catches that for an unknown call id catches this too."""


class FunctionTimeoutError(ServerError, TimeoutError):
    """The call did not finish within its timeout (Modal's name; ``CallTimeoutError`` too)."""


class ConnectionError(ServerError, builtins.ConnectionError):  # Modal's name
    """No server answers, or it went away mid-request (``ServerUnavailable`` too)."""

    def __init__(self, message: str) -> None:
        super().__init__(UNAVAILABLE, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self),)


class AuthError(ServerError):
    """The server refused the request's token (Modal's name)."""


class RequestSizeError(ServerError):
    """A request's payload is over the server's limit (COLDSNAP_MAX_PAYLOAD_BYTES)."""


class RemoteError(ServerError):
    """The server failed while handling a request (Modal's name); its log says more."""


class InternalError(RemoteError):
    """A bug or an I/O failure in the server itself (Modal's name)."""


class ExecutionError(ServerError):
    """Something went wrong running a function outside its own code: its container
    died, its deploy failed, or the server stopped before it ended (Modal's name)."""


class BadRequestError(ServerError, InvalidError):
    """The server refused a malformed request: an ``InvalidError`` too (Modal maps
    invalid arguments to that)."""


class UnimplementedError(Error, AttributeError):
    """A Modal API coldsnap does not have yet (Modal's name); an ``AttributeError`` too,
    so ``hasattr`` still answers False."""


class SerializationError(Error):
    """A value could not be pickled to send (Modal's name)."""


class DeserializationError(Error):
    """A value sent back could not be unpickled here (Modal's name)."""


class VersionError(Error):
    """The client and the server run incompatible coldsnap versions (Modal's name)."""


class InputCancellation(BaseException):
    """The call was cancelled (``FunctionCall.cancel()``): ``get()`` of it raises this
    (Modal's name). A BaseException, as Modal's: a bare ``except Exception`` in code
    that waits on a call does not swallow the cancellation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.kind = CANCELLED

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self),)


# coldsnap's earlier names.
CallTimeoutError = FunctionTimeoutError
ServerUnavailable = ConnectionError

PUBLIC_MODULE = "coldsnap.exception"
for _public in (Error, InvalidError, TimeoutError, InputCancellation, ServerError,
                NotFoundError, OutputExpiredError, FunctionTimeoutError, ConnectionError,
                AuthError, RequestSizeError, RemoteError, InternalError, ExecutionError,
                BadRequestError, UnimplementedError, SerializationError, DeserializationError,
                VersionError):
    _public.__module__ = PUBLIC_MODULE
del _public

_ERRORS: dict[str, type[ServerError]] = {
    NOT_FOUND: NotFoundError,
    EXPIRED: OutputExpiredError,
    TIMEOUT: FunctionTimeoutError,
    UNAUTHORIZED: AuthError,
    TOO_LARGE: RequestSizeError,
    BAD_REQUEST: BadRequestError,
    INTERNAL: InternalError,
    CONTAINER_DIED: ExecutionError,
    DEPLOY_FAILED: ExecutionError,
    INTERRUPTED: ExecutionError,
}


def error_header(kind: str, message: str, notes: list[str] | None = None) -> dict[str, Any]:
    """The header of a failed reply; ``notes`` go onto a remote exception (``add_note``)."""
    error: dict[str, Any] = {"kind": kind, "message": message}
    if notes:
        error["notes"] = list(notes)
    return {"ok": False, "error": error}


def error_from(header: dict[str, Any], blob: bytes | None) -> BaseException:
    """The exception a failed reply stands for (the user's own, for errors in user code)."""
    error = header.get("error") or {}
    kind, message = str(error.get("kind", INTERNAL)), str(error.get("message", ""))
    if blob is not None and kind in (REMOTE, BOOT_FAILED):
        from coldsnap.wire import serialization  # cloudpickle: only for a remote exception

        exc = serialization.loads_exception(blob)
        if kind == BOOT_FAILED:
            exc.add_note(message)
        for note in error.get("notes") or ():
            exc.add_note(str(note))
        return exc
    if kind in (UNAVAILABLE, BUSY):  # both: no server can take the request now
        return ServerUnavailable(message)
    if kind == CANCELLED:
        return InputCancellation(message)
    return _ERRORS.get(kind, ServerError)(kind, message)
