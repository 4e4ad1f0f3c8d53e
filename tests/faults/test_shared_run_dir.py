"""A second server pointed at a run dir a live server holds refuses to start: its
start-up sweep would otherwise take the live server's containers for a dead one's."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, settings_error_env


def test_a_run_dir_held_by_a_live_server_stops_a_second_one(
    server_factory: type[ServerHandle],
) -> None:
    require_criu()
    first = server_factory("criu").start()
    second = server_factory("criu", env={"COLDSNAP_RUN_DIR": str(first.run_dir)})
    done = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                          env=second.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert f"the run dir {first.run_dir} is in use by another coldsnap server" in done.stderr
    assert "Set COLDSNAP_RUN_DIR" in done.stderr
    assert "Traceback" not in done.stderr
    assert first.cli("apps", "ls").returncode == 0  # the first one serves on


def test_bad_numeric_settings_are_refused_by_name(server_factory: type[ServerHandle]) -> None:
    handle = server_factory()
    for name, value, said in settings_error_env():
        env = {**handle.env, name: value}
        serve = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert (serve.returncode, serve.stderr.strip()) == (2, f"error: {said}"), name
        client = subprocess.run([sys.executable, "-m", "coldsnap.cli.main", "apps", "ls"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert (client.returncode, client.stderr.strip()) == (2, f"error: {said}"), name
