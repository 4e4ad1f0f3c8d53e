"""What a container can't do to the server: break a call's answer with garbage on its
control pipe, read the server's environment, or outlive a server that shuts down
while it boots."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import stats, wait_for, write_app

GARBLER = """
import os

import coldsnap

app = coldsnap.App("test-garbler")


@app.function()
def garble(data: bytes) -> str:
    os.write(int(os.environ["COLDSNAP_CTRL_OUT_FD"]), data)
    return "the server must not take this for the answer"


@app.function()
def ok() -> str:
    return "still serving"
"""

GARBAGE = [
    b"\0\0\0\x05hello",  # a header that is not JSON
    b"\0\0\0\x02[]",  # JSON, not an object
    b"\xff\xff\xff\xff",  # a 4 GiB header
    b'\0\0\0\x0e{"blob": true}' + (1 << 40).to_bytes(8, "big"),  # a 1 TiB result
]


def test_garbage_on_the_control_pipe_fails_the_call_promptly(
    server: ServerHandle, tmp_path: Path
) -> None:
    server.cli("deploy", str(write_app(tmp_path, "garbler", GARBLER)))
    started = time.monotonic()
    out = server.python(
        "import coldsnap\n"
        "from coldsnap.wire.errors import ServerError\n"
        "garble = coldsnap.Function.from_name('test-garbler', 'garble')\n"
        f"for data in {GARBAGE!r}:\n"
        "    try:\n"
        "        print(garble.remote(data))\n"
        "    except ServerError as exc:\n"
        "        print(exc.kind, '|', exc)\n"
        "print(coldsnap.Function.from_name('test-garbler', 'ok').remote())\n",
        timeout=60,
    ).stdout.splitlines()
    assert time.monotonic() - started < 30
    assert len(out) == len(GARBAGE) + 1, out
    for line in out[:-1]:
        assert line.startswith("container_died | "), line
        assert "wrote a malformed message to its control pipe" in line
        assert "was stopped" in line
    assert "not JSON" in out[0] and "not an object" in out[1]
    assert "exceeds" in out[2] and "COLDSNAP_MAX_PAYLOAD_BYTES" in out[3]
    assert out[-1] == "still serving"
    garble = next(f for f in stats(server, "test-garbler")["functions"] if f["tag"] == "garble")
    assert garble["calls_failed"] == len(GARBAGE) and garble["containers"] == []


ENV_APP = """
import os

import coldsnap

if os.environ.get("SECRET_TOKEN_X"):
    raise RuntimeError("the server's SECRET_TOKEN_X reached the app's import")

app = coldsnap.App("test-env")


@app.function(env={"FROM_OPTIONS": "yes"})
def env() -> dict:
    return {name: os.environ.get(name) for name in ("SECRET_TOKEN_X", "FROM_OPTIONS", "LANG")
            } | {"PATH": bool(os.environ.get("PATH"))}
"""


def test_containers_do_not_see_the_servers_environment(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = server_factory(env={"SECRET_TOKEN_X": "1", "LANG": "C.UTF-8"}).start()
    server.cli("deploy", str(write_app(tmp_path, "env_app", ENV_APP)))  # describe: no secret
    out = server.python(
        "import coldsnap\n"
        "print(coldsnap.Function.from_name('test-env', 'env').remote())\n"
    ).stdout.strip()
    assert out == "{'SECRET_TOKEN_X': None, 'FROM_OPTIONS': 'yes', 'LANG': 'C.UTF-8', " \
                  "'PATH': True}"


SLOW_BOOT = """
import os
import time

import coldsnap

app = coldsnap.App("test-slow-boot")


@app.cls()
class Slow:
    @coldsnap.enter()
    def load(self):
        with open({pid_file!r}, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)

    @coldsnap.method()
    def run(self) -> str:
        return "booted"
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_shutdown_kills_containers_that_are_still_booting(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    server = server_factory().start()
    pid_file = tmp_path / "container.pid"
    app = write_app(tmp_path, "slow_boot", SLOW_BOOT.replace("{pid_file!r}", repr(str(pid_file))))
    server.cli("deploy", str(app))
    server.python("import coldsnap\n"
                  "coldsnap.Cls.from_name('test-slow-boot', 'Slow')().run.spawn()\n")
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30,
                       "the container to start booting"))
    try:
        started = time.monotonic()
        assert server.stop(timeout=60) == 0, server.log()
        assert time.monotonic() - started < 30  # the grace period, then the kill
        wait_for(lambda: not _running(pid), 10, "the booting container to be gone")
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
