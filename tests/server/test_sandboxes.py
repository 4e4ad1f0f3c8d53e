"""Sandboxes through the whole platform: real servers, real containers (criu engine).

Each test runs a client script against one module-wide server; the script prints
JSON, which the test reads back.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, wait_for, write_app

PRELUDE = """
import json, os, time
import coldsnap
from coldsnap.exception import (InvalidError, NotFoundError, SandboxTerminatedError,
                                SandboxTimeoutError)
app = coldsnap.App.lookup("sandbox-tests", create_if_missing=True)
HOST = coldsnap.Image.from_host()
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def _run(server: ServerHandle, code: str, check: bool = True) -> Any:
    """Run ``code`` (which sets ``result``) in a client process; its value, from JSON."""
    script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    done = server.python(script, check=check, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1]) if check else done


def test_exec_returns_output_and_exit_code(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app)
        p = sb.exec("sh", "-c", "echo out; echo err >&2; exit 3")
        result = [p.stdout.read(), p.stderr.read(), p.wait(), p.returncode,
                  sb.exec("echo", "hi").stdout.read(), sb.poll()]
        sb.terminate()
    """)
    assert result == ["out\n", "err\n", 3, 3, "hi\n", None]


def test_default_image_runs_in_a_user_namespace(srv: ServerHandle) -> None:
    """The default image (debian_slim, as Modal's) is a root of its own: root inside is
    a mapped id outside, and the host's files are not there."""
    uid_map, python = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app)
        result = [sb.exec("cat", "/proc/self/uid_map").stdout.read().split(),
                  sb.exec("python3", "-c", "import sys; print(sys.prefix)").stdout.read()]
        sb.terminate()
    """)
    assert uid_map[0] == "0" and uid_map[1] != "0", uid_map
    assert python.strip() == "/usr"


def test_entrypoint_output_and_return_code(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create("sh", "-c", "echo from-entry; exit 7", app=app,
                                     image=HOST)
        sb.wait()
        result = [sb.returncode, sb.stdout.read(), sb.poll()]
        try:
            sb.exec("echo", "late")
        except Exception as exc:
            result.append(str(exc))
    """)
    assert result[:3] == [7, "from-entry\n", 7]
    assert "has finished (its entrypoint exited with code 7)" in result[3]
    assert "create another with Sandbox.create()" in result[3]


def test_timeout_kills_the_sandbox(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create("sleep", "60", app=app, image=HOST, timeout=2)
        start = time.monotonic()
        try:
            sb.wait()
            result = ["no error"]
        except SandboxTimeoutError as exc:
            result = [str(exc), time.monotonic() - start, sb.returncode]
    """)
    assert "reached its timeout" in result[0]
    assert 1.0 < result[1] < 30, result
    assert result[2] == 137


def test_exec_timeout_kills_the_process(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        start = time.monotonic()
        code = sb.exec("sleep", "60", timeout=1).wait()
        result = [code, time.monotonic() - start, sb.poll()]
        sb.terminate()
    """)
    assert result[0] == -9, result  # SIGKILL
    assert result[1] < 30
    assert result[2] is None  # the sandbox itself lives on


def test_terminate_ends_it_and_its_processes(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        p = sb.exec("sleep", "60")
        sb.terminate()
        try:
            sb.wait()
            result = ["no error"]
        except SandboxTerminatedError as exc:
            result = [str(exc)]
        sb.wait(raise_on_termination=False)
        result += [sb.returncode, p.wait(),
                   coldsnap.Sandbox.from_id(sb.object_id).returncode]
    """)
    assert "was terminated" in result[0]
    assert result[1:] == [137, 137, 137]


def test_block_network(srv: ServerHandle) -> None:
    probe = ("import socket\ntry:\n    socket.create_connection(('10.255.255.1', 9), "
             "timeout=2)\nexcept OSError as exc:\n    print(exc.errno)")
    result = _run(srv, f"""
        blocked = coldsnap.Sandbox.create(app=app, block_network=True)
        result = blocked.exec("python3", "-c", {probe!r}).stdout.read()
        blocked.terminate()
    """)
    assert result.strip() == "101"  # ENETUNREACH: no route at all, not a timeout


def test_volume_and_secrets_are_visible(srv: ServerHandle) -> None:
    srv.cli("secret", "create", "sandbox-named", "NAMED=from-store")
    result = _run(srv, """
        vol = coldsnap.Volume.from_name("sandbox-vol", create_if_missing=True)
        sb = coldsnap.Sandbox.create(
            app=app, volumes={"/data": vol}, workdir="/data",
            secrets=[coldsnap.Secret.from_name("sandbox-named"),
                     coldsnap.Secret.from_dict({"INLINE": "from-dict"})])
        p = sb.exec("sh", "-c", "echo $NAMED $INLINE $EXTRA; pwd; echo written > f.txt",
                    env={"EXTRA": "from-exec"})
        result = [p.stdout.read(), p.wait(), b"".join(vol.read_file("f.txt")).decode()]
        sb.terminate()
    """)
    assert result == ["from-store from-dict from-exec\n/data\n", 0, "written\n"]


def test_aio_variants(srv: ServerHandle) -> None:
    result = _run(srv, """
        import asyncio

        async def main():
            sb = await coldsnap.Sandbox.create.aio(app=app, image=HOST)
            p = await sb.exec.aio("sh", "-c", "echo a; echo b")
            lines = [line async for line in p.stdout]
            code = await p.wait.aio()
            await sb.terminate.aio()
            return [lines, code]

        result = asyncio.run(main())
    """)
    assert result == [["a\n", "b\n"], 0]


def test_names_tags_and_listing(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST, name="named-one")
        sb.set_tags({"team": "a"})
        found = coldsnap.Sandbox.from_name("sandbox-tests", "named-one")
        listed = [s.object_id for s in coldsnap.Sandbox.list(app_id="sandbox-tests",
                                                              tags={"team": "a"})]
        try:
            coldsnap.Sandbox.create(app=app, image=HOST, name="named-one")
            twice = "no error"
        except Exception as exc:
            twice = str(exc)
        result = [found.object_id == sb.object_id, listed == [sb.object_id],
                  found.get_tags(), twice]
        sb.terminate()
    """)
    assert result[:3] == [True, True, {"team": "a"}]
    assert "already has a running sandbox named 'named-one'" in result[3]


def test_error_paths(srv: ServerHandle) -> None:
    result = _run(srv, """
        result = []
        for make in (lambda: coldsnap.Sandbox.create(),
                     lambda: coldsnap.Sandbox.create(app=app, encrypted_ports=[8000]),
                     lambda: coldsnap.Sandbox.from_id("sb-nonexistent"),
                     lambda: coldsnap.Sandbox.create(app=app, cpu=-1)):
            try:
                make()
                result.append("no error")
            except Exception as exc:
                result.append(f"{type(exc).__name__}: {exc}")
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        p = sb.exec("no-such-command")
        result += [p.wait(), p.stderr.read()]
        try:
            sb.exec("echo", pty=True)
        except InvalidError as exc:
            result.append(str(exc))
        sb.terminate()
    """)
    assert result[0].startswith("InvalidError: Sandbox.create() needs app=")
    assert "encrypted_ports" in result[1] and "not supported" in result[1]
    assert result[2].startswith("NotFoundError") and "sb-nonexistent" in result[2]
    assert "Sandbox.create()" in result[3] and "cpu" in result[3]
    assert result[4] == 127
    assert "could not start no-such-command" in result[5]
    assert "pty=True" in result[6] and "not supported" in result[6]


def test_server_stop_kills_sandboxes(server_factory: type[ServerHandle]) -> None:
    require_criu()
    server = server_factory("criu").start()
    # A command line no other process on the host has: the sandbox's, seen from the host.
    seconds = f"{300 + os.getpid() % 1000 / 1000:.3f}"
    _run(server, f"""
        sb = coldsnap.Sandbox.create(app=app, image=HOST)
        sb.exec("sleep", "{seconds}")
        result = sb.object_id
    """)
    wait_for(lambda: _host_pids_of(f"sleep {seconds}"), 30, "the sandbox's process")
    assert server.stop() == 0
    wait_for(lambda: not _host_pids_of(f"sleep {seconds}"), 30,
             "the sandbox's process to be gone after the server stopped")


def _host_pids_of(cmdline: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if handle.read().replace(b"\0", b" ").strip() == cmdline.encode():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_coldsnap_run_ends_the_apps_sandboxes_and_cli_lists_them(
        srv: ServerHandle, tmp_path: Path) -> None:
    """A `coldsnap run` entrypoint's sandbox ends with the run (its app is stopped), and
    `coldsnap sandbox ls` shows it; `coldsnap sandbox terminate` kills another."""
    app_file = write_app(tmp_path, "sandbox_run", """
        import coldsnap

        app = coldsnap.App("sandbox-run", image=coldsnap.Image.from_host())

        @app.function()
        def unused() -> None:  # `coldsnap run` wants an app with a function
            pass

        @app.local_entrypoint()
        def main():
            sb = coldsnap.Sandbox.create(app=app, image=coldsnap.Image.from_host())
            print("exec said", sb.exec("echo", "inside").stdout.read().strip(), sb.object_id)
    """)
    out = srv.cli("run", str(app_file)).stdout
    assert "exec said inside sb-" in out, out
    sandbox_id = out.split()[-1]
    listed = json.loads(srv.cli("sandbox", "ls", "--json").stdout)
    mine = [s for s in listed if s["sandbox_id"] == sandbox_id]
    assert mine and mine[0]["ended_by"] == "terminated", listed
    other = _run(srv, "result = coldsnap.Sandbox.create(app=app, image=HOST).object_id")
    assert srv.cli("sandbox", "terminate", other).stdout.strip() == \
        f"terminated sandbox {other}"
    table = srv.cli("sandbox", "ls", "--app", "sandbox-tests").stdout
    assert other in table and "terminated" in table


def test_none_engine_sandbox(server_factory: type[ServerHandle]) -> None:
    """Without CRIU (the none engine) a sandbox is a plain process tree on the host: exec
    works, volumes are refused by name, and terminate ends what it started."""
    server = server_factory("none").start()
    seconds = f"{400 + os.getpid() % 1000 / 1000:.3f}"
    result = _run(server, f"""
        sb = coldsnap.Sandbox.create(app=app)
        result = [sb.exec("echo", "plain").stdout.read()]
        sb.exec("sleep", "{seconds}")
        time.sleep(0.5)
        sb.terminate()
        try:
            coldsnap.Sandbox.create(app=app, volumes={{"/v": coldsnap.Volume.from_name(
                "v", create_if_missing=True)}})
        except Exception as exc:
            result.append(str(exc))
    """)
    assert result[0] == "plain\n"
    assert "volumes (/v) need containers with mount namespaces" in result[1]
    wait_for(lambda: not _host_pids_of(f"sleep {seconds}"), 30,
             "the none engine sandbox's process to be gone after terminate()")


def test_a_function_makes_a_sandbox(srv: ServerHandle, tmp_path: Path) -> None:
    app_file = write_app(tmp_path, "sandbox_maker", """
        import coldsnap

        app = coldsnap.App("sandbox-maker", image=coldsnap.Image.from_host())

        @app.function()
        def make() -> str:
            sb = coldsnap.Sandbox.create(image=coldsnap.Image.from_host())
            try:
                return sb.exec("echo", "made in a function").stdout.read()
            finally:
                sb.terminate()
    """)
    srv.cli("deploy", str(app_file))
    out = srv.python("import coldsnap\nprint(coldsnap.Function.from_name('sandbox-maker', "
                     "'make').remote(), end='')").stdout
    assert out == "made in a function\n"
    listed = json.loads(srv.cli("sandbox", "ls", "--app", "sandbox-maker", "--json").stdout)
    assert len(listed) == 1 and listed[0]["ended_by"] == "terminated"


def test_idle_timeout_and_streams_without_entrypoint(srv: ServerHandle) -> None:
    """idle_timeout ends a sandbox nobody uses; without an entrypoint its own stdout is
    empty and ends with it. exec(secrets=) adds a from_dict secret to one process."""
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST, idle_timeout=2)
        secret = coldsnap.Secret.from_dict({"ONLY_HERE": "yes"})
        seen = sb.exec("sh", "-c", "echo ${ONLY_HERE:-no}", secrets=[secret]).stdout.read()
        unseen = sb.exec("sh", "-c", "echo ${ONLY_HERE:-no}").stdout.read()
        start = time.monotonic()
        own = sb.stdout.read()  # open until the sandbox ends
        sb.wait(raise_on_termination=False)
        result = [seen, unseen, own, time.monotonic() - start, sb.returncode, sb.poll()]
    """)
    assert result[:3] == ["yes\n", "no\n", ""]
    assert 0.5 < result[3] < 30, result
    assert result[4:] == [137, 137]


def test_entrypoint_stdin(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create("sh", "-c", "read line; echo got $line; exit 4",
                                     app=app, image=HOST)
        sb.stdin.write("hello\\n")
        sb.stdin.write_eof()
        sb.wait()
        result = [sb.stdout.read(), sb.returncode]
    """)
    assert result == ["got hello\n", 4]


def test_memory_limit_kills_and_says_so(srv: ServerHandle) -> None:
    result = _run(srv, """
        sb = coldsnap.Sandbox.create(app=app, image=HOST, memory=128)
        p = sb.exec("python3", "-c", "x = bytearray(400 << 20); x[::4096] = b'1' * (100 << 10)")
        result = [p.wait(), p.stderr.read()]
        sb.terminate()
    """)
    assert result[0] == -9, result
    assert "ran out of memory (limit 128 MiB)" in result[1], result


def test_enable_output_shows_the_image_build(srv: ServerHandle) -> None:
    done = _run(srv, """
        image = coldsnap.Image.debian_slim().run_commands("echo built-for-sandbox > /built")
        with coldsnap.enable_output():
            sb = coldsnap.Sandbox.create(app=app, image=image)
        result = sb.exec("cat", "/built").stdout.read()
        sb.terminate()
    """, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == '"built-for-sandbox\\n"'
    assert "[build]" in done.stderr and "built-for-sandbox" in done.stderr, done.stderr
