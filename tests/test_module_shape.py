"""The module's shape as a Modal user meets it: every public name importable, Modal's
names coldsnap lacks rejected by name, ``app.run()`` and ``enable_output()``."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import coldsnap
import coldsnap.experimental
from coldsnap.exception import UnimplementedError
from tests.conftest import ServerHandle
from tests.end_to_end import write_app


@pytest.mark.parametrize("module", ["coldsnap", "coldsnap.exception", "coldsnap.experimental"])
def test_every_name_in_all_is_importable(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in loaded.__all__:
        exec(f"from {module} import {name}", {})  # `from coldsnap import X` works
        assert getattr(loaded, name) is not None


def test_a_modal_name_coldsnap_lacks_says_it_is_not_supported() -> None:
    with pytest.raises(UnimplementedError) as caught:
        coldsnap.Tunnel  # noqa: B018
    assert "modal.Tunnel" in str(caught.value)
    assert "not supported by coldsnap yet" in str(caught.value)
    assert isinstance(caught.value, AttributeError)  # hasattr() still answers False
    assert not hasattr(coldsnap, "Tunnel")
    with pytest.raises(ImportError, match="Tunnel"):
        exec("from coldsnap import Tunnel", {})


def test_a_name_modal_lacks_too_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError) as caught:
        coldsnap.no_such_thing  # noqa: B018
    assert type(caught.value) is AttributeError
    assert "no_such_thing" in str(caught.value)


def test_modal_experimental_names_are_named_too() -> None:
    with pytest.raises(UnimplementedError, match="modal.experimental.stop_fetching_inputs"):
        coldsnap.experimental.stop_fetching_inputs  # noqa: B018


def test_handles_name_modal_attributes_they_lack() -> None:
    app = coldsnap.App("shape")

    @app.function()
    def square(x: int) -> int:
        return x * x

    with pytest.raises(UnimplementedError, match=r"coldsnap\.App\.include is part of Modal"):
        app.include  # noqa: B018
    with pytest.raises(UnimplementedError, match=r"coldsnap\.Function\.keep_warm"):
        square.keep_warm  # noqa: B018
    with pytest.raises(UnimplementedError, match=r"coldsnap\.Cls\.get_methods"):
        coldsnap.Cls.from_name("shape", "Model").get_methods  # noqa: B018
    call = coldsnap.FunctionCall.from_id("fc-shape")
    with pytest.raises(UnimplementedError, match=r"coldsnap\.FunctionCall\.hydrate"):
        call.hydrate()
    assert pickle.loads(pickle.dumps(call)).object_id == "fc-shape"
    assert not hasattr(call, "no_such_attribute")
    with pytest.raises(AttributeError) as caught:
        app.no_such_attribute  # noqa: B018
    assert type(caught.value) is AttributeError
    assert pickle.loads(pickle.dumps(coldsnap.App("plain"))).name == "plain"  # dunders unaffected


def test_modal_exception_names_exist_and_catch_what_coldsnap_raises() -> None:
    exc = coldsnap.exception
    assert issubclass(exc.FunctionTimeoutError, exc.TimeoutError)
    assert issubclass(exc.InternalError, exc.RemoteError)
    assert issubclass(exc.BadRequestError, exc.InvalidError)
    assert issubclass(exc.InputCancellation, BaseException)
    assert not issubclass(exc.InputCancellation, Exception)  # `except Exception` misses it
    for name in ("AlreadyExistsError", "SandboxTimeoutError", "ServiceError",
                 "ExecutionError", "AuthError", "RequestSizeError", "VersionError",
                 "SerializationError", "DeserializationError"):
        assert issubclass(getattr(exc, name), exc.Error), name
        assert getattr(exc, name).__module__ == "coldsnap.exception"


@pytest.mark.parametrize("kind, name", [
    ("unauthorized", "AuthError"), ("too_large", "RequestSizeError"),
    ("bad_request", "InvalidError"), ("internal", "RemoteError"),
    ("container_died", "ExecutionError"), ("interrupted", "ExecutionError"),
    ("not_found", "NotFoundError"), ("timeout", "TimeoutError"),
])
def test_each_error_kind_is_caught_by_its_modal_name(kind: str, name: str) -> None:
    from coldsnap.wire.errors import error_from, error_header

    error = error_from(error_header(kind, "what went wrong"), None)
    assert isinstance(error, getattr(coldsnap.exception, name))
    assert isinstance(error, coldsnap.exception.ServerError)
    assert str(error) == "what went wrong"


def test_enable_output_is_a_context_manager() -> None:
    from coldsnap import running

    assert running._output["enabled"] is False
    with coldsnap.enable_output():
        assert running._output["enabled"] is True
    assert running._output["enabled"] is False


def test_app_run_refuses_an_app_with_no_file() -> None:
    app = coldsnap.App("empty")
    with pytest.raises(coldsnap.exception.InvalidError, match="app.run\\(\\) deploys the one file"):
        with app.run():
            pass


RUN_SCRIPT = """
import coldsnap

app = coldsnap.App("test-app-run")


@app.function()
def square(x: int) -> int:
    return x * x


if __name__ == "__main__":
    with coldsnap.enable_output(), app.run():
        print("result", square.remote(4), app.deployed_name.startswith("test-app-run-run-"))
    print("after", app.deployed_name)
"""


def test_app_run_deploys_an_ephemeral_copy_for_the_block(
        server: ServerHandle, tmp_path: Path) -> None:
    script = write_app(tmp_path, "run_script", RUN_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], env=server.env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["result 16 True", "after test-app-run"]
    assert "running" in done.stderr and "as ephemeral app test-app-run-run-" in done.stderr
    assert "test-app-run" not in server.cli("apps", "ls").stdout  # deleted at the end


def test_modal_functions_module_names() -> None:
    import coldsnap
    from coldsnap.functions import Function, FunctionCall

    assert (Function, FunctionCall) == (coldsnap.Function, coldsnap.FunctionCall)
    assert coldsnap.functions.FunctionCall is coldsnap.FunctionCall


def test_modal_queue_and_dict_module_names() -> None:
    assert coldsnap.queue.Queue is coldsnap.Queue  # after `import coldsnap`, as on Modal
    from coldsnap.dict import Dict
    from coldsnap.queue import Queue

    assert (Queue, Dict) == (coldsnap.Queue, coldsnap.Dict)
    assert subprocess.run([sys.executable, "-c", "import coldsnap.queue, coldsnap.dict"],
                          capture_output=True, timeout=60).returncode == 0


@pytest.mark.parametrize(("owner", "name"), [
    ("App", "include"), ("Function", "keep_warm"), ("Cls", "get_flash_url"),
    ("FunctionCall", "hydrate")])
def test_modal_class_attributes_coldsnap_lacks_say_so(owner: str, name: str) -> None:
    import coldsnap
    from coldsnap.exception import UnimplementedError

    with pytest.raises(UnimplementedError, match=rf"^coldsnap\.{owner}\.{name} is part of "
                       "Modal's API but is not supported by coldsnap yet"):
        getattr(getattr(coldsnap, owner), name)
    with pytest.raises(AttributeError) as typo:
        _ = getattr(coldsnap, owner).xyz_not_modal
    assert not isinstance(typo.value, UnimplementedError)
