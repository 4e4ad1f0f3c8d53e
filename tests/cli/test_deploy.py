"""deploy streams its build progress; --no-snapshot and `apps drain` for baselines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import require_criu, stats, wait_for, write_app

PIP_APP = """
import coldsnap

image = coldsnap.Image.from_host().pip_install("six")
app = coldsnap.App("test-progress", image=image)


@app.function()
def version() -> str:
    import six
    return six.__version__
"""


def test_deploy_streams_build_progress(server: ServerHandle, tmp_path: Path) -> None:
    app = write_app(tmp_path, "progress", PIP_APP)
    first = server.cli("deploy", str(app))
    build_lines = [line for line in first.stderr.splitlines() if line.startswith("[build")]
    assert any("Installing six" in line for line in build_lines), first.stderr
    assert all(re.match(r"\[build +\d+\.\ds\] ", line) for line in build_lines)
    out = server.python("import coldsnap\n"
                        "print(coldsnap.Function.from_name('test-progress', 'version').remote())")
    assert re.fullmatch(r"\d+\.\d+\.\d+", out.stdout.strip())
    again = server.cli("deploy", str(app))
    assert "up to date" in again.stdout
    assert "[build" not in again.stderr  # a cached image builds nothing


@pytest.mark.parametrize("engine", ["none", "criu"])
def test_no_snapshot_deploy_and_drain(server_factory: type[ServerHandle], engine: str) -> None:
    if engine == "criu":  # where a snapshot would be taken, --no-snapshot must prevent it
        require_criu()
    server = server_factory(engine).start()
    square = str(APPS / "square.py")
    server.cli("deploy", square)
    server.cli("deploy", square, "--name", "square-plain", "--no-snapshot")
    listing = server.cli("apps", "ls").stdout
    assert "square-plain" in listing
    call = ("import coldsnap\n"
            "print(coldsnap.Function.from_name('square-plain', 'square').remote(7))")
    assert server.python(call).stdout.strip() == "49"
    plain = stats(server, "square-plain")
    assert plain["boots"][0]["kind"] == "plain"  # snapshots turned off for this deployment
    drained = server.cli("apps", "drain", "square-plain").stdout
    assert "containers stopped" in drained
    assert not any(f["containers"] for f in stats(server, "square-plain")["functions"])
    assert server.python(call).stdout.strip() == "49"
    boots = stats(server, "square-plain")["boots"]
    assert [b["kind"] for b in boots] == ["plain", "plain"]  # the call cold-booted again
    if engine == "criu":
        version = stats(server, "square-plain")["version"][:32]
        keys = [s["key"] for s in json.loads(server.cli("snapshots", "ls", "--json").stdout)]
        assert not any(key.startswith(version) for key in keys), keys


FLAKY_WARM_APP = """
import os

import coldsnap

app = coldsnap.App("test-warm-retry")


@app.cls(min_containers=1)
class Warm:
    @coldsnap.enter()
    def start(self):
        if not os.path.exists({marker!r}):
            open({marker!r}, "w").close()
            raise RuntimeError("first boot fails")

    @coldsnap.method()
    def ping(self) -> str:
        return "pong"
"""


def test_min_containers_come_back_after_a_failed_boot(server: ServerHandle,
                                                      tmp_path: Path) -> None:
    app = write_app(tmp_path, "warm", FLAKY_WARM_APP.format(marker=str(tmp_path / "marker")))
    server.cli("deploy", str(app))
    wait_for(lambda: any(f["containers"] for f in stats(server, "test-warm-retry")["functions"]),
             30, "the warm container to be retried after the back-off, with no call")
    kinds = [b["ok"] for b in stats(server, "test-warm-retry")["boots"]]
    assert sorted(kinds) == [False, True]
