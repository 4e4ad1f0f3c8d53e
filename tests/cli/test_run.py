"""`coldsnap run`: entrypoint arguments, broken app files, the entrypoint's own errors,
Ctrl-C, and the exit hooks' output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import interruptible, module_server, wait_for, write_app

ENTRY_APP = """
import coldsnap

app = coldsnap.App("test-entry-args")


@app.function()
def double(n: int) -> int:
    return 2 * n


@app.local_entrypoint()
def main(flag: bool = True, off: bool = False, n: int = 1):
    print(f"flag={flag} off={off} n={double.remote(n)}")


@app.local_entrypoint()
def strict(flag: bool):
    print(f"flag={flag}")


@app.local_entrypoint()
def fails():
    raise BrokenPipeError("the entrypoint's own broken pipe")
"""


BROKEN_APPS = {
    "syntax": (
        "import coldsnap\napp = coldsnap.App('x')\ndef f(:\n    pass\n",
        ["line 3", "def f(:", "SyntaxError: invalid syntax"],
    ),
    "no_app": (
        "import coldsnap\n\n\ndef f():\n    pass\n",
        ["must define exactly one coldsnap.App at top level (found none)"],
    ),
    "import_error": (
        "import coldsnap\nimport no_such_module_for_coldsnap\n",
        [
            "import no_such_module_for_coldsnap",
            "ModuleNotFoundError: No module named 'no_such_module_for_coldsnap'",
        ],
    ),
}


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    yield from module_server("none")


def test_run_bool_parameters_keep_their_defaults_and_switch(
    srv: ServerHandle, tmp_path: Path
) -> None:
    app = str(write_app(tmp_path, "entry", ENTRY_APP))
    assert srv.cli("run", f"{app}::main").stdout.strip() == "flag=True off=False n=2"
    switched = srv.cli("run", f"{app}::main", "--no-flag", "--off", "--n", "4")
    assert switched.stdout.strip() == "flag=False off=True n=8"
    assert (
        srv.cli("run", f"{app}::main", "--flag", "--no-off").stdout.strip()
        == "flag=True off=False n=2"
    )
    assert srv.cli("run", f"{app}::strict", "--no-flag").stdout.strip() == "flag=False"
    missing = srv.cli("run", f"{app}::strict", check=False)
    assert missing.returncode == 2
    assert "the following arguments are required: --flag/--no-flag" in missing.stderr


@pytest.mark.parametrize("case", sorted(BROKEN_APPS))
def test_run_of_a_broken_app_file_says_why_without_our_traceback(
    srv: ServerHandle, tmp_path: Path, case: str
) -> None:
    source, expected = BROKEN_APPS[case]
    result = srv.cli("run", str(write_app(tmp_path, case, source)), check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    for internal in ("coldsnap/cli", "user_code.py", "<frozen"):  # the user's frames only
        assert internal not in result.stderr, result.stderr
    if case != "no_app":
        assert f"importing {tmp_path / case}.py failed, so it can't be run" in result.stderr


def test_a_bad_entrypoint_argument_deploys_nothing(srv: ServerHandle, tmp_path: Path) -> None:
    app = str(write_app(tmp_path, "entry", ENTRY_APP))
    log_before = len(srv.log())
    result = srv.cli("run", f"{app}::main", "--bogus", check=False)
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert "ephemeral app" not in result.stderr  # rejected before the deploy
    assert "deployed" not in srv.log()[log_before:]


def test_an_entrypoints_own_broken_pipe_is_reported(srv: ServerHandle, tmp_path: Path) -> None:
    app = str(write_app(tmp_path, "entry", ENTRY_APP))
    result = srv.cli("run", f"{app}::fails", check=False)
    assert result.returncode == 1
    assert "BrokenPipeError: the entrypoint's own broken pipe" in result.stderr


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
        preexec_fn=interruptible,
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


def test_run_takes_a_dotted_module_like_modal_run(server_factory: type[ServerHandle]) -> None:
    server = server_factory().start()
    (server.root / "pkg").mkdir()
    write_app(server.root / "pkg", "hello", """
        import coldsnap
        app = coldsnap.App("hello-module")

        @app.function()
        def double(n: int) -> int:
            return 2 * n

        @app.local_entrypoint()
        def main(n: int = 4):
            print("doubled:", double.remote(n))
    """)
    result = server.cli("run", "pkg.hello::main", "--n", "21")
    assert "doubled: 42" in result.stdout, result.stderr
    missing = server.cli("run", "pkg.absent", check=False)
    assert missing.returncode == 1
    assert (f"'pkg.absent' is neither a file nor a module under {server.root}: give the app "
            "file's path (coldsnap run app.py) or its module") in missing.stderr, missing.stderr


DETACHED_APP = """
import time

import coldsnap

app = coldsnap.App("test-detach")
done = coldsnap.Dict.from_name("test-detach-done", create_if_missing=True)


@app.function()
def slow(n: int) -> None:
    time.sleep(2)
    done[n] = True


@app.local_entrypoint()
def main():
    slow.spawn_map(range(3))
    print("spawned")
"""


def test_run_detach_leaves_the_app_running_so_spawned_calls_finish(
        srv: ServerHandle, tmp_path: Path) -> None:
    """Modal's 09_job_queues/scatter_gather.py runs as `modal run --detach`: its entrypoint
    only spawns, so without --detach the calls die with the app."""
    result = srv.cli("run", "--detach", str(write_app(tmp_path, "detached", DETACHED_APP)))
    assert result.stdout.strip() == "spawned"
    name = next(word for word in result.stderr.split() if word.startswith("test-detach-run-"))
    assert f"stop it with `coldsnap app stop {name}`" in result.stderr, result.stderr
    check = ("import coldsnap\n"
             "print(coldsnap.Dict.from_name('test-detach-done', create_if_missing=True).len())")
    wait_for(lambda: srv.python(check).stdout.strip() == "3", timeout=120,
             what="the detached app's three spawned calls to finish")
    assert name in srv.cli("apps", "ls").stdout
    srv.cli("app", "stop", name)
