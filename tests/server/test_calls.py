"""Calls through from_name from a separate process or from inside a container: results,
errors, spawn, map, lookups, payloads and their limit. And the server's table of calls."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.client import Client
from coldsnap.server.calls import Call
from coldsnap.server.errors import ApiError
from coldsnap.settings import Settings
from coldsnap.wire.errors import ServerError
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server()


@pytest.fixture(scope="module", autouse=True)
def deployed(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "square.py"))
    srv.cli("deploy", str(APPS / "exit_hook.py"))


def test_function_remote_map_spawn(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap\n"
        "sq = coldsnap.Function.from_name('test-square', 'square')\n"
        "print(sq.remote(3))\n"
        "print(list(sq.map(range(6))))\n"
        "call = sq.spawn(11)\n"
        "print(call.get(timeout=60))\n"
        "big = coldsnap.Function.from_name('test-square', 'big')\n"
        "print([len(b) for b in big.starmap([(2,), (3,)])])\n"
    ).stdout.splitlines()
    assert out == ["9", "[0, 1, 4, 9, 16, 25]", "121", "[2, 3]"]


def test_the_lookup_op_describes_a_function_of_the_current_version(srv: ServerHandle) -> None:
    out = srv.python(
        "import json\n"
        "from coldsnap.client import Client\n"
        "from coldsnap.wire import ops\n"
        "reply = Client.default().request(ops.LOOKUP, app='test-exit-hook', tag='Worker')[0]\n"
        "print(json.dumps(reply))\n"
    ).stdout
    reply = json.loads(out)
    assert (reply["kind"], reply["methods"]) == ("cls", ["work"])
    assert len(reply["version"]) == 64 and reply["options"]["retries"] == 0


def test_class_method_from_name(srv: ServerHandle) -> None:
    result = srv.python(
        "import coldsnap\n"
        "W = coldsnap.Cls.from_name('test-exit-hook', 'Worker')\n"
        "print(W().work.remote(1), W().work.remote(41))\n"
    )
    assert result.stdout.split() == ["2", "42"]


def test_user_exception_keeps_type_and_remote_traceback(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap, traceback\n"
        "f = coldsnap.Function.from_name('test-square', 'fail')\n"
        "try:\n"
        "    f.remote('nope')\n"
        "except ValueError as exc:\n"
        "    print(type(exc).__name__, '|', exc, '|', 'Remote traceback' in ''.join(\n"
        "        getattr(exc, '__notes__', [])) or 'Remote traceback' in str(exc))\n"
        "k = coldsnap.Function.from_name('test-square', 'fail_builtin')\n"
        "try:\n"
        "    k.remote('missing')\n"
        "except KeyError as exc:\n"
        "    print('KeyError', exc)\n"
    ).stdout.splitlines()
    assert out == ["SquareError | refusing: nope | True", "KeyError 'missing'"]


def test_large_result(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap\n"
        "big = coldsnap.Function.from_name('test-square', 'big')\n"
        "data = big.remote(30_000_000)\n"
        "print(len(data), data[:2])\n"
    ).stdout
    assert out.split() == ["30000000", "b'ZZ'"]


def test_unknown_app_function_and_method(srv: ServerHandle) -> None:
    out = srv.python(
        "import coldsnap\n"
        "from coldsnap.client import Client\n"
        "from coldsnap.wire.errors import NotFoundError\n"
        "from coldsnap.wire.serialization import dumps_args\n"
        "conn = Client.default()\n"
        "for app, tag, method in [('nope', 'f', None), ('test-square', 'nope', None),\n"
        "                         ('test-exit-hook', 'Worker', 'nope')]:\n"
        "    try:\n"
        "        conn.call(app, tag, method, dumps_args((), {}))\n"
        "    except NotFoundError as exc:\n"
        "        print(exc)\n"
    ).stdout.splitlines()
    assert out[0].startswith("no app named 'nope' is deployed")
    assert "coldsnap deploy" in out[0]
    assert out[1].startswith("app 'test-square' has no function or class 'nope'; it has: big")
    assert out[2] == "class test-exit-hook/Worker has no method 'nope'; its methods are: work"


def test_deploy_and_remote_call(server: ServerHandle) -> None:
    out = server.cli("deploy", str(APPS / "square.py")).stdout
    assert "deployed test-square version" in out
    result = server.python(
        "import coldsnap\n"
        "sq = coldsnap.Function.from_name('test-square', 'square')\n"
        "print(sq.remote(7), sq.remote(12))\n"
    )
    assert result.stdout.split() == ["49", "144"]
    # The caller sees its call's log lines, prefixed by the container id.
    assert "] square(7)" in result.stderr
    assert "[cs-" in result.stderr
    # Redeploying unchanged code is a no-op.
    again = server.cli("deploy", str(APPS / "square.py")).stdout
    assert "is up to date" in again


NESTED_APP = """
import os

import coldsnap

# A state dir of its own: were a server started in the container, it would show there.
os.environ["COLDSNAP_STATE_DIR"] = {state_dir!r}
app = coldsnap.App("test-nested")


class Odd(Exception):
    pass


@app.function()
def inner(x: int) -> int:
    if x % 2:
        raise Odd(f"{{x}} is odd")
    return x + 1


@app.function(enable_memory_snapshot=True)
def outer(x: int) -> list:
    results = [inner.remote(x)]
    results.append(list(inner.map(range(0, 6, 2))))
    results.append(inner.spawn(x + 2).get(timeout=60))
    try:
        inner.remote(x + 1)
    except Odd as exc:  # the nested call's exception, as the app's own class
        results.append(f"caught {{exc}}")
    return results


@app.cls()
class Eager:
    @coldsnap.enter()
    def setup(self):
        try:
            inner.remote(0)
            self.seen = "no error"
        except Exception as exc:
            self.seen = f"{{type(exc).__name__}}: {{exc}}"

    @coldsnap.method()
    def seen_in_setup(self) -> str:
        return self.seen
"""


def _stop_stray_server(state_dir: Path) -> None:
    """Stop a server a container started (it must not), by the pid it reports."""
    if not (state_dir / "coldsnap.sock").exists():
        return
    conn = Client(Settings(state_dir=state_dir))
    try:
        os.kill(int(conn.ping()["pid"]), signal.SIGTERM)
    except (ServerError, OSError):
        pass
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ["none", "criu"])
def test_a_function_calls_others_from_inside_its_container(
    server_factory: type[ServerHandle], tmp_path: Path, engine: str
) -> None:
    if engine == "criu":
        require_criu()
    server = server_factory(engine=engine).start()
    stray = tmp_path / "stray-state"
    # Under another name than App(...)'s: calls to its other functions must go there.
    server.cli("deploy", "--name", "nested-renamed", str(write_app(
        tmp_path, "nested", NESTED_APP.format(state_dir=str(stray)))))
    try:
        out = server.python(
            "import coldsnap\n"
            "print(coldsnap.Function.from_name('nested-renamed', 'outer').remote(4))\n"
            "print(coldsnap.Cls.from_name('nested-renamed', 'Eager')().seen_in_setup.remote())\n"
        ).stdout.splitlines()
        assert out[0] == "[5, [1, 3, 5], 7, 'caught 5 is odd']"
        assert out[1].startswith("InvalidError: calls to other functions")
        assert "from inside a call, not from @enter" in out[1]
        assert not stray.exists()  # no second server was started in a container
    finally:
        _stop_stray_server(stray)


def test_a_result_over_the_payload_limit_says_so(
    server_factory: type[ServerHandle]
) -> None:
    server = server_factory(env={"COLDSNAP_MAX_PAYLOAD_BYTES": "1000000"}).start()
    server.cli("deploy", str(APPS / "square.py"))
    out = server.python(
        "import coldsnap\n"
        "big = coldsnap.Function.from_name('test-square', 'big')\n"
        "try:\n"
        "    big.remote(2_000_000)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', str(exc).replace(chr(10), ' '))\n"
        "print(len(big.remote(10)))\n"
    ).stdout.splitlines()
    assert out[0].startswith("InvalidError | the result of big is 2000"), out
    assert "over the limit of 1000000 bytes (COLDSNAP_MAX_PAYLOAD_BYTES" in out[0]
    assert "write large outputs to a file or volume and return its path, or raise" in out[0]
    assert "malformed" not in out[0]
    assert out[1] == "10"
    big = next(f for f in stats(server, "test-square")["functions"] if f["tag"] == "big")
    # An error answered by the runtime: no container died for it.
    assert (big["calls_error"], big["calls_ok"], big["calls_failed"]) == (1, 1, 0)


def test_a_class_looked_up_as_a_function_and_back(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "exit_hook.py"))
    server.cli("deploy", str(APPS / "square.py"))
    out = server.python(
        "import coldsnap\n"
        "from coldsnap.wire.errors import ServerError\n"
        "for call in (lambda: coldsnap.Function.from_name('test-exit-hook', 'Worker').remote(),\n"
        "             lambda: coldsnap.Cls.from_name('test-square', 'square')().run.remote(3)):\n"
        "    try:\n"
        "        call()\n"
        "    except ServerError as exc:\n"
        "        print(exc)\n"
    ).stdout.splitlines()
    assert out == [
        "test-exit-hook/Worker is a class: use coldsnap.Cls.from_name('test-exit-hook', "
        "'Worker')().work.remote(...)",
        "test-square/square is a function, not a class: use coldsnap.Function.from_name("
        "'test-square', 'square').remote(...)",
    ]


BIG_REQUEST_APP = """
import coldsnap

app = coldsnap.App("test-big-request")


@app.function()
def inner(data: bytes) -> int:
    return len(data)


@app.function()
def outer(size: int) -> str:
    try:
        return str(inner.remote(b"x" * size))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
"""


def test_a_call_from_a_container_over_the_payload_limit_says_so(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = server_factory(env={"COLDSNAP_MAX_PAYLOAD_BYTES": "1000000"}).start()
    server.cli("deploy", str(write_app(tmp_path, "bigreq", BIG_REQUEST_APP)))
    out = server.python(
        "import coldsnap\n"
        "outer = coldsnap.Function.from_name('test-big-request', 'outer')\n"
        "print(outer.remote(2_000_000))\n"
        "print(outer.remote(10))\n"
    ).stdout.splitlines()
    assert out[0].startswith("InvalidError: the arguments of this call are 200"), out
    assert "over the server's limit of 1000000 bytes (COLDSNAP_MAX_PAYLOAD_BYTES)" in out[0]
    assert out[1] == "10"  # the calling container lives on


def test_call_finishes_once() -> None:
    call = Call("app", "f", None, b"", timeout_s=1, retries=0)
    assert call.fail(ApiError("timeout", "first"))
    assert not call.fail(ApiError("timeout", "second"))
    assert call.outcome is not None and call.outcome.error is not None
    assert call.outcome.error.message == "first"


def test_retry_delays_double_from_one_second_up_to_a_minute() -> None:
    call = Call("app", "f", None, b"", timeout_s=1, retries=10)
    delays = []
    for attempt in range(1, 12):
        call.attempts = attempt
        delays.append(call.retry_delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, None]
