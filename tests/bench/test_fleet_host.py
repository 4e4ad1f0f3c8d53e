"""A host of `coldsnap bench fleet` (coldsnap/bench/fleet_host.py): once its server is
stopped, or killed, its state dir goes and nothing of it stays mounted; its server.log
stays, and says how much memory the server kept warm. Real servers, real CRIU."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.bench.fleet_host import Host, mounts_under
from tests.end_to_end import require_criu


@pytest.fixture
def host() -> Iterator[Host]:
    require_criu()
    # Short paths: the server's socket lives in its state dir.
    root = Path(tempfile.mkdtemp(prefix="cs-fh-", dir="/tmp"))
    made = Host("A", root / "a", {"COLDSNAP_HTTP": "off", "COLDSNAP_WARM_MEMORY_MB": "64",
                                  "COLDSNAP_IMAGE_DIR": str(root / "images")})
    try:
        yield made
    finally:
        made.stop()
        made.remove_state()
        shutil.rmtree(root, ignore_errors=True)


def test_a_stopped_hosts_state_goes_and_its_log_stays(host: Host) -> None:
    host.start()
    run_dir = host.settings.run_path
    assert mounts_under(run_dir), "a running server has its run dir mounted"
    with pytest.raises(RuntimeError, match="still runs: stop"):
        host.remove_state()
    host.stop()
    assert host.remove_state() == []
    assert not (host.root / "state").exists()
    assert host.log_path.is_file()
    assert mounts_under(host.root, run_dir) == []
    assert host.ran_with() == {"warm_memory_mb": "64", "warm_memory_held_mb": 64,
                               "server_log": str(host.log_path)}


def test_a_killed_servers_mounts_are_undone_before_its_state_goes(host: Host) -> None:
    host.start()
    assert host.proc is not None
    host.proc.kill()
    host.proc.wait()
    run_dir = host.settings.run_path
    assert mounts_under(run_dir), "a killed server leaves its run dir mounted"
    assert host.remove_state() == []
    assert mounts_under(host.root, run_dir) == []
    assert not run_dir.exists()
    assert not (host.root / "state").exists()
    assert host.log_path.is_file()
