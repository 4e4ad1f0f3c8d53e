"""Handles: remote/spawn/map/local, lookups, and the app name they call.

``coldsnap.client`` belongs to the server side; here a fake stands in for
it and forwards calls to a real runtime subprocess.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import coldsnap
from coldsnap.wire import ops, serialization
from coldsnap.wire.errors import InvalidError
from tests._runtime.harness import APPS, RuntimeSession


class FakeClient:
    """Client's interface, forwarding to RuntimeSessions keyed by tag."""

    def __init__(self) -> None:
        self.sessions: dict[str, RuntimeSession] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.spawned: dict[str, tuple[dict[str, Any], bytes | None]] = {}
        self._ids = itertools.count()

    def _run(self, app_name: str, tag: str, method: str | None, blob: bytes) -> Any:
        self.requests.append((app_name, tag, method))
        session = self.sessions[tag]
        call_id = f"call-{next(self._ids)}"
        session.send("call", blob, call_id=call_id, method=method)
        return session.expect("result")

    def call(self, app_name: str, tag: str, method: str | None, args_blob: bytes,
             timeout: float | None) -> bytes:
        header, blob = self._run(app_name, tag, method, args_blob)
        assert blob is not None
        if not header["ok"]:
            raise serialization.loads_exception(blob)
        return blob

    def spawn(self, app_name: str, tag: str, method: str | None, args_blob: bytes) -> str:
        call_id = f"spawned-{len(self.spawned)}"
        self.spawned[call_id] = self._run(app_name, tag, method, args_blob)
        return call_id

    def get(self, call_id: str, timeout: float | None) -> bytes:
        header, blob = self.spawned.pop(call_id)
        assert blob is not None
        if not header["ok"]:
            raise serialization.loads_exception(blob)
        return blob

    def request(self, op: str, blob: bytes | None = None, **fields: Any
                ) -> tuple[dict[str, Any], bytes | None]:
        # map's get, which asks the server to drop the result once answered.
        assert (op, fields["forget"]) == (ops.GET, True)
        return {"ok": True}, self.get(fields["call_id"], fields["timeout"])


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeClient]:
    conn = FakeClient()
    for app_file, tag in [("square.py", "square"), ("square.py", "fail"),
                          ("embedder_like.py", "Embedder")]:
        session = RuntimeSession.for_app(app_file, tag)
        session.expect("ready")
        conn.sessions[tag] = session
    module = types.ModuleType("coldsnap.client")
    module.Client = types.SimpleNamespace(default=lambda: conn)  # type: ignore[attr-defined]
    saved = sys.modules.get("coldsnap.client")
    sys.modules["coldsnap.client"] = module
    yield conn
    if saved is None:
        sys.modules.pop("coldsnap.client", None)
    else:
        sys.modules["coldsnap.client"] = saved
    for session in conn.sessions.values():
        session.close()


@pytest.fixture(scope="module")
def apps() -> types.SimpleNamespace:
    from coldsnap.user_code import import_app_file

    return types.SimpleNamespace(
        square=import_app_file(APPS / "square.py"),
        embedder=import_app_file(APPS / "embedder_like.py"),
    )


def test_function_remote_local_and_deployed_name(
    fake: FakeClient, apps: types.SimpleNamespace
) -> None:
    square = apps.square.square
    assert square.local(5) == 25
    assert square.remote(6) == 36
    assert fake.requests[-1] == ("test-square", "square", None)
    apps.square.app._deployed_as = "test-square-ephemeral-1"
    try:
        assert square.remote(2) == 4
        assert fake.requests[-1] == ("test-square-ephemeral-1", "square", None)
    finally:
        apps.square.app._deployed_as = None


def test_spawn_get_and_map_in_order(fake: FakeClient, apps: types.SimpleNamespace) -> None:
    call = apps.square.square.spawn(11)
    assert isinstance(call, coldsnap.FunctionCall)
    assert call.get(timeout=5) == 121
    assert list(apps.square.square.map(range(6))) == [0, 1, 4, 9, 16, 25]
    assert list(apps.square.square.map([])) == []


def test_map_return_exceptions(fake: FakeClient) -> None:
    fail = coldsnap.Function.from_name("test-square", "fail")
    results = list(fail.map(["a", "b"], return_exceptions=True))
    assert [type(r).__name__ for r in results] == ["SquareError", "SquareError"]
    with pytest.raises(ValueError, match="refusing: a"):
        list(fail.map(["a"]))


def test_remote_exception_reaches_the_caller(fake: FakeClient) -> None:
    fail = coldsnap.Function.lookup("test-square", "fail")
    with pytest.raises(ValueError, match="refusing: x") as info:
        fail.remote("x")
    assert "Remote traceback:" in "\n".join(info.value.__notes__)


def test_cls_from_name_remote_and_spawn(fake: FakeClient) -> None:
    Embedder = coldsnap.Cls.from_name("test-embedder-like", "Embedder")
    vectors = Embedder().run.remote(["what is the meaning of life?"])
    assert len(vectors) == 1 and len(vectors[0]) == 8
    assert fake.requests[-1] == ("test-embedder-like", "Embedder", "run")
    assert Embedder().run.spawn(["a", "b"]).get() == Embedder().run.remote(["a", "b"])
    with pytest.raises(InvalidError, match="looked up by name"):
        Embedder().run.local(["x"])


def test_registered_cls_local_runs_hooks_and_checks_names(
    fake: FakeClient, apps: types.SimpleNamespace
) -> None:
    Embedder = apps.embedder.Embedder
    obj = Embedder()
    local = obj.run.local(["hello"])
    assert local == Embedder().run.remote(["hello"])
    assert obj.state.local()["events"] == ["base_load", "load", "setup"]
    with pytest.raises(AttributeError, match="has no @coldsnap.method\\(\\) named 'load'"):
        _ = obj.load
    with pytest.raises(InvalidError, match=r"Embedder\(\.\.\.\) takes its parameters by keyword"):
        Embedder("model")
    with pytest.raises(InvalidError, match=r"Embedder\(\) got unknown parameter\(s\) model"):
        Embedder(model="x")
    assert Embedder.method_names == ["run", "state"]


def test_calling_handles_directly_says_remote_or_local(apps: types.SimpleNamespace) -> None:
    with pytest.raises(InvalidError, match=r"call square\.remote\(\.\.\.\) to run it"):
        apps.square.square(3)
    with pytest.raises(InvalidError, match=r"Embedder\.run is a coldsnap method"):
        apps.embedder.Embedder().run(["x"])


def test_looked_up_function_has_no_local() -> None:
    f = coldsnap.Function.from_name("some-app", "f")
    with pytest.raises(InvalidError, match="looked up by name"):
        f.local()
    with pytest.raises(InvalidError, match="two non-empty strings"):
        coldsnap.Function.from_name("", "f")


def test_args_of_the_app_module_load_as_the_containers_own_classes(
    fake: FakeClient, apps: types.SimpleNamespace, tmp_path: Path
) -> None:
    # The client imported square.py as module "square" and says so; a container that
    # knows the same file under another name ("app") answers to "square" too.
    blob = apps.square.square._dumps_args((apps.square.SquareError("x"),), {})
    (tmp_path / "app.py").write_bytes((APPS / "square.py").read_bytes())
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys\n"
         "from pathlib import Path\n"
         "from coldsnap import user_code\nfrom coldsnap.wire import serialization\n"
         f"module = user_code.import_app_file(Path({str(tmp_path / 'app.py')!r}))\n"
         "alias = lambda name: sys.modules.setdefault(name, module)\n"
         "caller, args, _ = serialization.loads_args(sys.stdin.buffer.read(), alias)\n"
         "print(caller, type(args[0]) is module.SquareError, args[0])\n"],
        input=blob, capture_output=True, check=True, cwd="/",
    )
    assert loaded.stdout.decode().strip() == "square True x"



def test_function_call_get_checks_its_timeout_and_caps_it_at_a_week() -> None:
    seen: list[float | None] = []

    class Recording:
        def get(self, call_id: str, timeout: float | None = None) -> bytes:
            seen.append(timeout)
            return cloudpickle.dumps("done")

    call = coldsnap.FunctionCall.from_id("fc-1", client=Recording())  # type: ignore[arg-type]
    assert call.get(timeout=10**7) == "done" and seen == [7 * 24 * 3600.0]
    assert call.get() == "done" and seen[-1] is None
    for bad in (-1, float("nan"), True, "5"):
        with pytest.raises(coldsnap.exception.InvalidError, match="takes seconds >= 0"):
            call.get(timeout=bad)  # type: ignore[arg-type]
