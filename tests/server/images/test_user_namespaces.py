"""A real server's containers on an image's own root run in its user namespace
(engine/userns.py): fresh, restored from a snapshot, and with apt and pip steps
built in one; from_host() containers run without one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

APP = """
import coldsnap

image = coldsnap.Image.debian_slim().apt_install("jq").pip_install("six==1.16.0")
app = coldsnap.App("userns", image=image)


def ids() -> dict:
    import os
    return {"uid": os.getuid(), "uid_map": open("/proc/self/uid_map").read().split(),
            "shadow": os.access("/etc/shadow", os.R_OK)}


@app.function()
def look() -> dict:
    import subprocess, six
    return {**ids(), "six": six.__version__,
            "jq": subprocess.run(["jq", "-n", "2+2"], capture_output=True, text=True).stdout}


@app.function(image=coldsnap.Image.from_host())
def on_host() -> dict:
    return ids()


@app.cls(enable_memory_snapshot=True)
class Snapped:
    @coldsnap.enter(snap=True)
    def load(self):
        self.before = ids()

    @coldsnap.method()
    def both(self) -> list:
        return [self.before, ids()]
"""


@pytest.fixture(scope="module")
def app_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("userns"), "app", APP)


@pytest.fixture(scope="module")
def server(app_file: Path) -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(app_file), timeout=900)
        yield handle


def call(server: ServerHandle, expression: str) -> object:
    out = server.python(f"import json, coldsnap; print(json.dumps({expression}))")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mapped(seen: object) -> bool:
    assert isinstance(seen, dict)
    base = int(seen["uid_map"][1])
    return seen["uid"] == 0 and base > 0 and seen["uid_map"][2] == "65536"


def test_a_debian_function_runs_in_the_server_s_range_with_its_apt_and_pip_steps(
    server: ServerHandle
) -> None:
    seen = call(server, "coldsnap.Function.from_name('userns', 'look').remote()")
    assert mapped(seen), seen
    assert isinstance(seen, dict)
    assert (seen["six"], seen["jq"], seen["shadow"]) == ("1.16.0", "4\n", True)


def test_from_host_runs_as_the_host_s_root(server: ServerHandle) -> None:
    seen = call(server, "coldsnap.Function.from_name('userns', 'on_host').remote()")
    assert isinstance(seen, dict) and seen["uid_map"] == ["0", "0", "4294967295"], seen


def test_a_restored_copy_keeps_the_mapping(server: ServerHandle, app_file: Path) -> None:
    expression = "coldsnap.Cls.from_name('userns', 'Snapped')().both.remote()"
    first = call(server, expression)  # makes the snapshot
    server.cli("apps", "stop", "userns")  # its containers go; the same version again
    server.cli("deploy", str(app_file), timeout=900)
    before, after = call(server, expression)  # type: ignore[misc]
    assert mapped(after) and after["uid_map"] == before["uid_map"], (before, after)
    assert isinstance(first, list) and first[0]["uid_map"] == before["uid_map"]
    assert server.log().count("restored from memory snapshot") >= 2  # both boots restored
