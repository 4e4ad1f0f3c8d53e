"""`criu restore` killed while it runs: the call gets its result from a plain boot, the
snapshot is kept (a killed restore says nothing about its files), and restores of the
key resume after a pause."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, write_app
from tests.faults.test_dump_failures import BIG_SNAPSHOT, CALL, kill_criu_mid

MB = 512


def test_a_killed_criu_restore_falls_back_and_keeps_the_snapshot(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    require_criu()
    server = server_factory(engine="criu").start()
    server.cli("deploy", str(write_app(tmp_path, "big", BIG_SNAPSHOT.format(mb=MB))))
    assert server.python(CALL).stdout.strip() == str(MB * 2**20)  # snapshot made
    server.cli("apps", "drain", "test-big-snapshot")
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(server.python, CALL)
        kill_criu_mid(server, b"restore", server.settings.run_path)
        second = call.result(timeout=300)
    assert second.stdout.strip() == str(MB * 2**20)  # a plain boot served it
    assert "restore from memory snapshot failed (transient" in second.stderr, second.stderr
    rows = [r for r in json.loads(server.cli("snapshots", "ls", "--json").stdout)
            if r["app"] == "test-big-snapshot"]
    assert [r["status"] for r in rows] == ["ready"], rows  # kept, not quarantined
    assert "(transient: restores of this key resume in" in rows[0]["last_error"], rows
