"""App lifecycle: redeploys drain old containers, stop runs exit hooks, restarts keep apps,
logs, and `coldsnap run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import app_with_env, stats, wait_for, write_app

VERSIONED = """
import coldsnap

app = coldsnap.App("test-versioned")


@app.function()
def which() -> str:
    print("serving {tag}", flush=True)
    return "{tag}"
"""


def _which(server: ServerHandle) -> str:
    return server.python(
        "import coldsnap\n"
        "print(coldsnap.Function.from_name('test-versioned', 'which').remote())\n"
    ).stdout.strip()


def test_changed_code_is_a_new_version_and_old_containers_drain(
    server: ServerHandle, tmp_path: Path
) -> None:
    app = write_app(tmp_path, "versioned", VERSIONED.format(tag="v1"))
    server.cli("deploy", str(app))
    assert _which(server) == "v1"
    v1 = stats(server, "test-versioned")["version"]
    app.write_text(VERSIONED.format(tag="v2"))
    out = server.cli("deploy", str(app)).stdout
    assert out.startswith("deployed test-versioned version")
    assert _which(server) == "v2"
    info = stats(server, "test-versioned")
    assert info["version"] != v1
    # The v1 container leaves once idle; only v2's remains.
    wait_for(lambda: all(f["version"] != v1 for f in stats(server, "test-versioned")["functions"]),
             15, "the v1 pool to drain")


def test_stop_runs_exit_hooks(server_factory: type[ServerHandle], tmp_path: Path) -> None:
    marker = tmp_path / "exit-marker"
    server = server_factory().start()
    server.cli("deploy", str(app_with_env(tmp_path, APPS / "exit_hook.py",
                                          {"EXIT_HOOK_MARKER": str(marker)})))
    out = server.python(
        "import coldsnap\n"
        "W = coldsnap.Cls.from_name('test-exit-hook', 'Worker')\n"
        "print(W().work.remote(1), W().work.remote(2))\n"
    ).stdout
    assert out.split() == ["2", "3"]
    assert not marker.exists()
    assert server.cli("apps", "stop", "test-exit-hook").stdout.strip() == "stopped test-exit-hook"
    wait_for(marker.exists, 15, "the exit hook's marker file")
    assert marker.read_text() == "exited after 2 calls\n"
    stopped = server.python(
        "import coldsnap\n"
        "from coldsnap.wire.errors import NotFoundError\n"
        "try:\n"
        "    coldsnap.Cls.from_name('test-exit-hook', 'Worker')().work.remote(1)\n"
        "except NotFoundError as exc:\n"
        "    print(exc)\n"
    ).stdout
    assert "app 'test-exit-hook' is stopped" in stopped
    logs = server.cli("logs", "test-exit-hook").stdout
    assert "exit hook: 2 calls served" in logs


def test_deployed_apps_survive_a_restart(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    server.restart()
    listing = json.loads(server.cli("apps", "ls", "--json").stdout)
    assert [(a["name"], a["state"]) for a in listing] == [("test-square", "deployed")]
    out = server.python(
        "import coldsnap\n"
        "print(coldsnap.Function.from_name('test-square', 'square').remote(6))\n"
    )
    assert out.stdout.strip() == "36"


def test_logs_and_follow(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "coldsnap.cli.main", "logs", "test-square", "-f"],
        env=server.env, stdout=subprocess.PIPE, text=True,
    )
    try:
        server.python("import coldsnap\n"
                      "coldsnap.Function.from_name('test-square', 'square').remote(13)\n")
        assert follower.stdout is not None
        seen = []
        for line in follower.stdout:
            seen.append(line)
            if "square(13)" in line:
                break
        assert any(line.startswith("[cs-") and "square(13)" in line for line in seen)
    finally:
        follower.terminate()
        follower.wait(10)
        if follower.stdout is not None:
            follower.stdout.close()
    logs = server.cli("logs", "test-square").stdout
    assert "square(13)" in logs
    assert "plain boot ready in" in logs or "boot ready in" in logs


def test_run_executes_the_entrypoint_in_an_ephemeral_app(server: ServerHandle) -> None:
    result = server.cli("run", str(APPS / "square.py"))
    assert result.stdout.strip() == "49"
    assert "as ephemeral app test-square-run-" in result.stderr
    assert "square(7)" in result.stderr
    result = server.cli("run", f"{APPS / 'square.py'}::square", "--x", "6")
    assert result.stdout.strip() == "36"
    assert json.loads(server.cli("apps", "ls", "--json").stdout) == []
    bad = server.cli("run", f"{APPS / 'square.py'}::nope", check=False)
    assert bad.returncode == 1
    assert "has no local entrypoint or function 'nope'; it has:" in bad.stderr


def test_run_of_a_function_that_returns_nothing_prints_nothing(server: ServerHandle,
                                                               tmp_path: Path) -> None:
    app_file = tmp_path / "quiet.py"
    app_file.write_text("import coldsnap\napp = coldsnap.App('test-quiet-run')\n\n\n"
                        "@app.function()\ndef quiet() -> None:\n    print('working')\n")
    result = server.cli("run", f"{app_file}::quiet")
    assert result.stdout == "", result.stdout  # not "None"
    assert "working" in result.stderr
