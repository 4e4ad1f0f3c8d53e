"""``coldsnap.exception``: the exceptions users catch, under Modal's module and names."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

import coldsnap
from coldsnap.wire import errors
from tests.conftest import ServerHandle


def test_the_exceptions_are_public_under_coldsnap_exception() -> None:
    exc = coldsnap.exception
    assert exc.NotFoundError is errors.NotFoundError
    assert coldsnap.Error is exc.Error
    assert repr(exc.NotFoundError) == "<class 'coldsnap.exception.NotFoundError'>"
    for cls in (exc.Error, exc.InvalidError, exc.NotFoundError, exc.ServerError,
                exc.FunctionTimeoutError, exc.ConnectionError):
        assert cls.__module__ == "coldsnap.exception"
        assert getattr(exc, cls.__qualname__) is cls  # what the repr names exists
        assert issubclass(cls, exc.Error)
    assert pickle.loads(pickle.dumps(exc.InvalidError)) is exc.InvalidError


def test_modal_names_and_coldsnaps_are_the_same_classes() -> None:
    exc = coldsnap.exception
    assert exc.CallTimeoutError is exc.FunctionTimeoutError
    assert exc.ServerUnavailable is exc.ConnectionError
    # Code that caught the builtins before keeps working.
    assert issubclass(exc.FunctionTimeoutError, TimeoutError)
    assert issubclass(exc.ConnectionError, ConnectionError)
    assert issubclass(exc.NotFoundError, LookupError)


def test_a_missing_app_is_caught_as_coldsnap_exception_not_found(server: ServerHandle) -> None:
    result = server.python(
        "import traceback\n"
        "import coldsnap\n"
        "try:\n"
        "    coldsnap.Function.from_name('no-such-app', 'square').remote(3)\n"
        "except coldsnap.exception.NotFoundError as exc:\n"
        "    print(repr(type(exc)))\n"
        "    traceback.print_exception(exc)\n")
    assert result.stdout.strip() == "<class 'coldsnap.exception.NotFoundError'>"
    assert "coldsnap.exception.NotFoundError: " in result.stderr
    assert "no-such-app" in result.stderr


@pytest.mark.parametrize("error", [
    coldsnap.exception.NotFoundError("not_found", "no app named 'x'"),
    coldsnap.exception.FunctionTimeoutError("timeout", "no result within 1 s"),
    coldsnap.exception.ConnectionError("no server answers"),
    coldsnap.exception.ServerError("internal", "boom"),
])
def test_errors_survive_pickling_as_a_remote_exception_does(error: Exception) -> None:
    again = cloudpickle.loads(cloudpickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert again.kind == error.kind  # type: ignore[attr-defined]
