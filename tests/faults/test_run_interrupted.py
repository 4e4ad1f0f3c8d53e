"""`coldsnap run` interrupted (Ctrl-C) while its spawned calls run and wait: the
ephemeral app is deleted, and every call answers with an error that says why."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import interruptible, wait_for, write_app

RUN_APP = """
import time

import coldsnap

app = coldsnap.App("test-run-ctrl-c")


@app.function(max_containers=1, timeout=600)
def slow(seconds: float) -> str:
    print("slow: started", flush=True)
    time.sleep(seconds)
    return "slept"


@app.local_entrypoint()
def main():
    calls = [slow.spawn(60) for _ in range(3)]
    print(slow.app_name, *[call.object_id for call in calls], flush=True)
    calls[0].get()
"""

GET = ("import coldsnap, sys\n"
       "for call_id in sys.argv[1:]:\n"
       "    try:\n"
       "        print(repr(coldsnap.FunctionCall.from_id(call_id).get(timeout=30)))\n"
       "    except Exception as exc:\n"
       "        print(getattr(exc, 'kind', ''), '|', str(exc).replace(chr(10), ' '))\n")


def test_ctrl_c_of_run_ends_its_running_and_queued_calls(
    server: ServerHandle, tmp_path: Path
) -> None:
    app_file = write_app(tmp_path, "runapp", RUN_APP)
    run = subprocess.Popen([sys.executable, "-m", "coldsnap.cli.main", "run", str(app_file)],
                           env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=str(tmp_path), preexec_fn=interruptible)
    assert run.stdout is not None
    name, *call_ids = run.stdout.readline().split()
    wait_for(lambda: "slow: started" in server.cli("logs", name).stdout, 60,
             "the first call to start")
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=60)
    assert name not in server.cli("apps", "ls").stdout  # deleted
    out = server._run([sys.executable, "-c", GET, *call_ids], True, 120).stdout.splitlines()
    assert out[0].startswith("container_died | "), out  # killed at once, not waited for
    assert out[1:] == [f"unavailable | app {name!r} was stopped and deleted"] * 2
