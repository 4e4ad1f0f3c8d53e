"""Scheduled functions with a real server: they run on time, a redeploy replaces the
schedule, stopping the app stops it."""

from __future__ import annotations

import json
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
    server.cli("deploy", str(app))
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
    assert "scheduled run of tick failed: test-scheduled/tick raised ValueError" in \
        _logs(server)
    server.cli("app", "stop", "test-scheduled")

