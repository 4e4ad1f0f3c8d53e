"""How arguments, results and exceptions travel: cloudpickle blobs."""

from __future__ import annotations

import contextlib
import io
import pickle
import traceback
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import cloudpickle


class RemoteError(Exception):
    """An exception raised in a container whose own type could not be rebuilt here."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{type_name}: {message}\n\nRemote traceback:\n{remote_traceback}")
        self.type_name = type_name
        self.remote_traceback = remote_traceback


def dumps_args(
    args: tuple[Any, ...], kwargs: dict[str, Any], module: str | None = None
) -> bytes:
    """Two pickles in a row: ``module``, the name the caller imported the app file
    under (None: it did not), then the arguments. Values of that module go by
    reference: the container answers to that name too (``loads_args``)."""
    stream = io.BytesIO()
    pickle.dump(module, stream)
    cloudpickle.dump((args, kwargs), stream)
    return stream.getvalue()


def loads_args(
    blob: bytes, alias: Callable[[str], None] = lambda module: None
) -> tuple[str | None, tuple[Any, ...], dict[str, Any]]:
    """(caller's module name, args, kwargs); ``alias(module)`` runs before the
    arguments load, so it can make that name importable here."""
    stream = io.BytesIO(blob)
    module = pickle.load(stream)
    if module is not None:
        alias(module)
    args, kwargs = cloudpickle.load(stream)
    return module, tuple(args), dict(kwargs)


@contextlib.contextmanager
def by_reference(module: ModuleType | None) -> Iterator[None]:
    """Inside the block, values of ``module`` pickle by reference even if it is
    registered by value (the receiver has the module; None changes nothing)."""
    if module is None or module.__name__ not in cloudpickle.list_registry_pickle_by_value():
        yield
        return
    cloudpickle.unregister_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.register_pickle_by_value(module)


def dumps_result(value: Any) -> bytes:
    return cloudpickle.dumps(value)


def dumps_exception(exc: BaseException, limit: int | None = None) -> bytes:
    """Pickle an exception with its traceback text; falls back to a plain description
    (a RemoteError on the caller's side) when it can't be pickled or, with it, the blob
    would be over ``limit`` bytes."""
    tb = "".join(traceback.format_exception(exc))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    try:
        pickled_exc: bytes | None = cloudpickle.dumps(exc)
    except Exception:
        pickled_exc = None
    message = str(exc)
    blob = cloudpickle.dumps(
        {"type": type_name, "message": message, "traceback": tb, "exception": pickled_exc})
    if limit is not None and len(blob) > limit:
        cut = max(1000, limit // 4)
        blob = cloudpickle.dumps({"type": type_name, "message": message[:cut],
                                  "traceback": tb[-cut:], "exception": None})
    return blob


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
