"""How arguments, results and exceptions travel: cloudpickle blobs."""

from __future__ import annotations

import traceback
from typing import Any

import cloudpickle


class RemoteError(Exception):
    """An exception raised in a container whose own type could not be rebuilt here."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}\n\nRemote traceback:\n{remote_traceback}")
        self.type_name = type_name
        self.remote_traceback = remote_traceback


def dumps_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    return cloudpickle.dumps((args, kwargs))


def loads_args(blob: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = cloudpickle.loads(blob)
    return tuple(args), dict(kwargs)


def dumps_result(value: Any) -> bytes:
    return cloudpickle.dumps(value)


def dumps_exception(exc: BaseException) -> bytes:
    """Pickle an exception with its traceback text; falls back to a plain description."""
    tb = "".join(traceback.format_exception(exc))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    try:
        pickled_exc: bytes | None = cloudpickle.dumps(exc)
    except Exception:
        pickled_exc = None
    return cloudpickle.dumps(
        {"type": type_name, "message": str(exc), "traceback": tb, "exception": pickled_exc}
    )


def loads_exception(blob: bytes) -> BaseException:
    """Rebuild the remote exception, with the remote traceback attached as a note."""
    info = cloudpickle.loads(blob)
    exc: BaseException | None = None
    if info.get("exception") is not None:
        try:
            exc = cloudpickle.loads(info["exception"])
        except Exception:
            exc = None
    if exc is None:
        return RemoteError(info["type"], info["message"], info["traceback"])
    exc.add_note("Remote traceback:\n" + info["traceback"])
    return exc
