"""What a user sees at the server's edges: a call made from inside a container, the warm
pool after a drain, Ctrl-C on `coldsnap run`, exit hook output of a run, a result over
the payload limit, a class looked up as a function (and back), and app names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coldsnap.client import Client
from coldsnap.server.describe import check_app_name
from coldsnap.server.errors import ApiError
from coldsnap.settings import Settings
from coldsnap.wire.errors import InvalidError, ServerError
from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu, stats, wait_for, write_app

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


WARM_APP = """
import coldsnap

app = coldsnap.App("test-warm-drain")


@app.function(min_containers=1)
def warm() -> str:
    return "warm"
"""


def _warm_ids(server: ServerHandle) -> list[str]:
    return [c["id"] for f in stats(server, "test-warm-drain")["functions"]
            for c in f["containers"]]


def test_drain_brings_the_warm_pool_back(server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "warm", WARM_APP)))
    before = wait_for(lambda: _warm_ids(server), 30, "the warm container")
    assert "containers stopped" in server.cli("apps", "drain", "test-warm-drain").stdout
    after = wait_for(lambda: _warm_ids(server), 30, "a warm container after the drain")
    assert set(after).isdisjoint(before)  # a new container, booted with no call


SLEEPY_APP = """
import os
import time

import coldsnap

app = coldsnap.App("test-sleepy")


@app.function()
def sleepy(pid_file: str) -> str:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
    return "woke up"


@app.local_entrypoint()
def main(pid_file: str):
    print(sleepy.remote(pid_file))
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_on_run_kills_the_ephemeral_apps_containers(
    server: ServerHandle, tmp_path: Path
) -> None:
    pid_file = tmp_path / "sleepy.pid"
    app = write_app(tmp_path, "sleepy", SLEEPY_APP)
    run = subprocess.Popen(
        [sys.executable, "-m", "coldsnap.cli.main", "run", str(app), "--pid_file",
         str(pid_file)],
        env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    pid = 0
    try:
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60,
                           "the call to start in its container"))
        run.send_signal(signal.SIGINT)
        assert run.wait(30) == 130
        started = time.monotonic()
        wait_for(lambda: not _running(pid), 15, "the container of the stopped run to be gone")
        assert time.monotonic() - started < 15
        assert json.loads(server.cli("apps", "ls", "--json").stdout) == []
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
        if pid and _running(pid):
            os.kill(pid, signal.SIGKILL)


EXIT_HOOK_RUN_APP = """
import coldsnap

app = coldsnap.App("test-run-exit-hook")


@app.cls()
class Counter:
    @coldsnap.enter()
    def start(self):
        self.calls = 0

    @coldsnap.method()
    def bump(self) -> int:
        self.calls += 1
        return self.calls

    @coldsnap.exit()
    def stop(self):
        print(f"exit hook ran after {self.calls} calls", flush=True)


@app.local_entrypoint()
def main():
    print(Counter().bump.remote(), Counter().bump.remote())
"""


def test_run_shows_the_exit_hooks_output(server: ServerHandle, tmp_path: Path) -> None:
    result = server.cli("run", str(write_app(tmp_path, "run_exit_hook", EXIT_HOOK_RUN_APP)))
    assert result.stdout.strip() == "1 2"
    assert "exit hook ran after 2 calls" in result.stderr, result.stderr


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


BAD_NAMES = [".", "..", "x;rm", "a" * 65, "a\nb", "abc\n", "a b", "-x", "", "a/b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_app_names_follow_the_sdks_rule(name: str) -> None:
    with pytest.raises(ApiError, match="is not valid: use 1-64 letters, digits"):
        check_app_name(name)
    with pytest.raises(InvalidError, match="is invalid: use 1-64 letters, digits"):
        import coldsnap

        coldsnap.App(name)


LONG_NAME_APP = """
import coldsnap

app = coldsnap.App({name!r})


@app.function()
def hello() -> str:
    return "hello"
"""


def test_deploy_refuses_a_name_the_sdk_refuses(server: ServerHandle, tmp_path: Path) -> None:
    assert check_app_name("a" * 64) == "a" * 64
    for name in ("x;rm", ".."):
        result = server.cli("deploy", "--name", name, str(APPS / "square.py"), check=False)
        assert result.returncode == 1
        assert f"app name {name!r} is not valid" in result.stderr
    assert json.loads(server.cli("apps", "ls", "--json").stdout) == []
    # `run` names its ephemeral copy after the app: still a valid name for a 64-char one.
    app = write_app(tmp_path, "long_name", LONG_NAME_APP.format(name="n" * 64))
    assert server.cli("run", str(app)).stdout.strip() == "hello"


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
