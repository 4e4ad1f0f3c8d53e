"""`coldsnap snapshots why` and `snapshots ls` for a snapshot that `coldsnap run` made:
a snapshot's key names the source's version, not the app, so the app deployed from
the same file restores from it, and both commands must say it is that app's."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, stats, write_app

APP = "test-why-run-copy"
SOURCE = f"""
import coldsnap

app = coldsnap.App({APP!r})


@app.cls(enable_memory_snapshot=True)
class Counter:
    @coldsnap.enter(snap=True)
    def load(self):
        self.start = 41

    @coldsnap.method()
    def next(self) -> int:
        return self.start + 1


@app.local_entrypoint()
def main():
    print("counted", Counter().next.remote())
"""


def test_why_finds_the_snapshot_a_run_made_for_the_deployed_app(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    require_criu()
    srv = server_factory("criu").start()
    app_file = write_app(tmp_path, "run_copy", SOURCE)
    assert srv.cli("run", str(app_file)).stdout.strip() == "counted 42"
    srv.cli("deploy", str(app_file))
    called = srv.python("import coldsnap\n"
                        f"print(coldsnap.Cls.from_name({APP!r}, 'Counter')().next.remote())")
    assert called.stdout.strip() == "42"
    assert stats(srv, APP)["boots"][0]["kind"] == "restored"  # the run's snapshot

    why = json.loads(srv.cli("snapshots", "why", APP, "Counter", "--json").stdout)[0]
    assert why["function"] == "Counter" and why["previous"] is None, why
    made_by = why["current"]["made_by"]
    assert made_by.startswith(f"{APP}-run-"), why
    text = srv.cli("snapshots", "why", APP).stdout  # FUNCTION left out: each with one
    assert f"{APP}/Counter: snapshot {why['current']['key']} (made " in text, text
    assert f" by {made_by})" in text and "the first snapshot of this function" in text

    [row] = [r for r in json.loads(srv.cli("snapshots", "ls", "--json").stdout)
             if r["key"] == why["current"]["key"]]
    assert row["app"] == APP and row["tag"] == "Counter", row  # not the deleted copy's name

    shown = srv.cli("snapshots", "inspect", row["key"]).stdout
    assert shown.startswith(f"snapshot {row['key']} of {APP}/Counter "), shown
    assert f"made by   {made_by} (a `coldsnap run` copy" in shown, shown
