"""`coldsnap serve --cluster ray://HOST:PORT` on a cluster it can't reach: it fails within
seconds naming the address and what to check, and stops promptly on SIGTERM while it
waits for Ray (ray_connect.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coldsnap.bench.seaweed import free_port


def _serve(tmp_path: Path, address: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COLDSNAP_STATE_DIR": str(tmp_path / "state"),
           "COLDSNAP_RUN_DIR": str(tmp_path / "run"), "COLDSNAP_HTTP": "off",
           "COLDSNAP_DASHBOARD": "off", "COLDSNAP_ENGINE": "none"}
    return subprocess.Popen([sys.executable, "-m", "coldsnap.cli.main", "serve", "--cluster",
                             f"ray://{address}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def test_an_unreachable_cluster_fails_at_once_naming_the_address(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the fleet needs Ray: pip install 'coldsnap[cluster]'")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    proc = _serve(tmp_path, address)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert time.monotonic() - t0 < 30  # ~1 s alone: the rest is a loaded machine
    assert f"error: can't reach the Ray cluster's GCS at {address}" in err, err
    assert "`ray start --head` runs on 127.0.0.1" in err and "Traceback" not in err, err


def test_a_serve_waiting_for_a_silent_cluster_stops_on_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the fleet needs Ray: pip install 'coldsnap[cluster]'")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        proc = _serve(tmp_path, f"127.0.0.1:{silent.getsockname()[1]}")
        try:
            time.sleep(8)  # importing Ray, then ray.init waiting on the silent GCS
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            proc.communicate(timeout=30)
            assert time.monotonic() - t0 < 15
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
