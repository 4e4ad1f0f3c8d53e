"""Scheduled functions with a real server: they run on time, a redeploy replaces the
schedule, stopping the app stops it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import wait_for, write_app

SCHEDULED = """
import coldsnap

app = coldsnap.App("test-scheduled")


@app.function(schedule=coldsnap.Period(seconds={seconds}))
def tick() -> None:
    print("tick {tag}", flush=True)
"""


def _logs(server: ServerHandle) -> str:
    return server.cli("logs", "test-scheduled", "-n", "1000").stdout


def test_a_period_runs_on_time_redeploys_replace_it_and_stop_ends_it(
        server: ServerHandle, tmp_path: Path) -> None:
    app = write_app(tmp_path, "scheduled", SCHEDULED.format(seconds=2, tag="v1"))
    deployed = server.cli("deploy", str(app)).stdout
    assert "schedule every 2 s" in deployed, deployed  # the table's FEATURES column
    wait_for(lambda: _logs(server).count("tick v1") >= 2, 60, "two scheduled runs of v1")
    assert "coldsnap: scheduled run of tick (every 2 s)" in _logs(server)
    stats = json.loads(server.cli("apps", "stats", "test-scheduled", "--json").stdout)
    (entry,) = stats["schedules"]
    assert entry["tag"] == "tick" and entry["runs"] >= 2
    assert "SCHEDULE" in server.cli("apps", "stats", "test-scheduled").stdout

    # A redeploy replaces the schedule: v2's function runs, every 3 s now.
    app.write_text(SCHEDULED.format(seconds=3, tag="v2"))
    server.cli("deploy", str(app))
    wait_for(lambda: _logs(server).count("tick v2") >= 2, 60, "two scheduled runs of v2")
    logs = _logs(server)
    assert "scheduled run of tick (every 3 s)" in logs
    v1_runs = logs.count("tick v1")
    assert logs.rfind("tick v1") < logs.find("tick v2")  # v1 ran no more after v2 began

    # `coldsnap app stop` (Modal's spelling) ends the schedule.
    server.cli("app", "stop", "test-scheduled")
    stopped_at = _logs(server).count("scheduled run of tick (")
    wait_for(lambda: "app stopped" in _logs(server), 10, "the stop in the log")
    time.sleep(7)  # two periods and more
    # At most one that was due as the stop came (it can't start: the app is stopped).
    assert _logs(server).count("scheduled run of tick (") <= stopped_at + 1
    assert _logs(server).count("tick v1") == v1_runs
    assert json.loads(server.cli("apps", "stats", "test-scheduled", "--json").stdout
                      )["schedules"] == []


FAILING = """
import coldsnap

app = coldsnap.App("test-scheduled")


@app.function(schedule=coldsnap.Period(seconds=1))
def tick() -> None:
    raise ValueError("the feed is down")
"""


def test_a_failed_scheduled_run_says_why(server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "scheduled", FAILING)))
    wait_for(lambda: "raised ValueError: the feed is down" in _logs(server), 60,
             "a failed run's exception in the log")
    logs = _logs(server)
    assert "scheduled run of tick failed: test-scheduled/tick raised ValueError" in logs
    # Nobody reads a scheduled run's result: its traceback is in the log, indented.
    failed = logs[logs.index("scheduled run of tick failed"):]
    assert "\n    Traceback (most recent call last):" in failed, failed
    assert 'scheduled.py", line 9, in tick' in failed, failed
    assert 'raise ValueError("the feed is down")' in failed, failed
    server.cli("app", "stop", "test-scheduled")



EPHEMERAL = """
import sys
import time

import coldsnap
from coldsnap.client import Client

app = coldsnap.App("test-ephemeral-schedule")


@app.function(schedule=coldsnap.Period(seconds=1))
def tick() -> None:
    print("tick from the schedule", flush=True)


@app.function()
def hello() -> int:
    print("hello from a call", flush=True)
    return 7


def wait_for_runs(runs: int) -> None:
    # Bounded: the scheduler's own count of runs started, then time for their output.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stats = Client.default().request("app_stats", app=app._deployed_as)[0]
        if stats["schedules"] and stats["schedules"][0]["runs"] >= runs:
            break
        time.sleep(0.2)
    time.sleep(3)


@app.local_entrypoint()
def main() -> None:
    print("result", hello.remote())
    wait_for_runs(3)


if __name__ == "__main__":
    with coldsnap.enable_output():
        with app.run():
            main()
    print("block ended", flush=True)
"""


def test_an_ephemeral_app_runs_its_schedules_while_it_runs_and_shows_their_output(
        server: ServerHandle, tmp_path: Path) -> None:
    app = write_app(tmp_path, "ephemeral_schedule", EPHEMERAL)
    done = server._run([sys.executable, str(app)], check=True, timeout=240)
    assert done.stdout.splitlines()[-2:] == ["result 7", "block ended"]
    # Under enable_output the schedule's prints reach the client (stderr, as a call's).
    assert done.stderr.count("tick from the schedule") >= 2, done.stderr
    assert done.stderr.count("hello from a call") == 1, done.stderr  # not twice
    # Nothing runs after the block: the app was stopped and deleted with it.
    ended = server.log().count("scheduled run of tick (")
    assert ended >= 2
    time.sleep(4)
    assert server.log().count("scheduled run of tick (") == ended


def test_coldsnap_run_runs_the_schedules_and_shows_their_output(
        server: ServerHandle, tmp_path: Path) -> None:
    app = write_app(tmp_path, "ephemeral_schedule", EPHEMERAL)
    done = server.cli("run", str(app), timeout=240)
    assert "result 7" in done.stdout
    assert done.stderr.count("tick from the schedule") >= 2, done.stderr
    assert done.stderr.count("hello from a call") == 1, done.stderr
