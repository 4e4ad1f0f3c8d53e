"""A boot without a snapshot is a plain boot, under the criu engine too: a fallback
container has the network (and GPUs) that the snapshot phase's sandbox lacks. And
`coldsnap snapshots rm` is how a failed key is tried again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, write_app

# enter(snap=True) keeps /dev/zero open and the runtime is told that /dev/zero is a GPU
# device: the snapshot is refused, as for a hook that opened a CUDA context.
REFUSED = """
import os
import socket

import coldsnap

os.environ["COLDSNAP_GPU_DEVICE_PREFIX"] = "/dev/zero"
app = coldsnap.App("test-refused-snapshot")


@app.cls(enable_memory_snapshot=True)
class Refused:
    @coldsnap.enter(snap=True)
    def open_device(self):
        self.device = open("/dev/zero", "rb")

    @coldsnap.method()
    def network(self) -> dict:
        with open("/proc/net/route") as f:
            routes = [line.split() for line in f.read().splitlines()[1:]]
        return {"interfaces": sorted(name for _, name in socket.if_nameindex()),
                "default_route": any(r[1] == "00000000" for r in routes if len(r) > 1),
                "snapshot_phase": os.environ.get("COLDSNAP_SNAPSHOT")}
"""
CALL = ("import coldsnap\n"
        "print(coldsnap.Cls.from_name('test-refused-snapshot', 'Refused')().network.remote())\n")


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def _snapshot_rows(server: ServerHandle) -> list[dict]:
    rows: list[dict] = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    return [r for r in rows if r.get("app") == "test-refused-snapshot"]


def test_a_refused_snapshot_boots_a_plain_container_with_network(
    srv: ServerHandle, tmp_path: Path
) -> None:
    srv.cli("deploy", str(write_app(tmp_path, "refused", REFUSED)))
    for attempt in ("refused", "already failed"):
        result = srv.python(CALL)
        network = eval(result.stdout.strip())  # a dict's repr, from our own app
        assert network["snapshot_phase"] == "0", attempt
        assert "eth0" in network["interfaces"] and network["default_route"], (attempt, network)
        boots = stats(srv, "test-refused-snapshot")["boots"]
        assert boots[0]["kind"] == "fallback" and boots[0]["ok"], (attempt, boots)
        srv.cli("apps", "drain", "test-refused-snapshot")  # the next call cold-boots
    assert "snapshot refused, booting without one" in result.stderr or \
        "snapshot refused" in srv.cli("logs", "test-refused-snapshot").stdout
    [row] = _snapshot_rows(srv)
    assert row["status"] == "failed" and row["last_error"].startswith("refused: ")
    ls = srv.cli("snapshots", "ls").stdout
    assert "`coldsnap snapshots rm KEY` clears it" in ls

    removed = srv.cli("snapshots", "rm", row["key"]).stdout
    assert f"cleared the failure of {row['key']}" in removed
    assert _snapshot_rows(srv) == []


def test_rm_of_an_unknown_key_fails(srv: ServerHandle) -> None:
    result = srv.cli("snapshots", "rm", "no-such-key", check=False)
    assert result.returncode != 0
    assert "no snapshot or failure record named 'no-such-key'" in result.stderr
    assert "coldsnap snapshots ls" in result.stderr
