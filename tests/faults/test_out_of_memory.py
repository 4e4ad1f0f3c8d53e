"""A container over its memory limit: the caller is told it ran out of memory, in words,
and the next call is served by a new container."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, write_app

APP = """
import coldsnap

app = coldsnap.App("test-oom")


@app.function()
def hog(mb: int) -> int:
    data = bytearray(mb * 2**20)
    for i in range(0, len(data), 4096):  # touch every page: resident, not just reserved
        data[i] = 1
    return len(data)
"""
CALLER = """
import coldsnap

hog = coldsnap.Function.from_name("test-oom", "hog")
try:
    hog.remote(600)
except Exception as exc:
    print(type(exc).__name__, "|", exc)
print(hog.remote(10))
"""


def test_a_container_over_its_memory_limit_says_it_ran_out_of_memory(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    require_criu()  # the limits are cgroups around the criu engine's containers
    server = server_factory("criu", env={"COLDSNAP_CONTAINER_MEMORY_MB": "200"}).start()
    server.cli("deploy", str(write_app(tmp_path, "oom", APP)))
    died, served = server.python(CALLER).stdout.splitlines()
    assert died.startswith("ExecutionError | container cs-"), died
    assert "container ran out of memory (limit 200 MiB): raise memory=" in died
    assert served == str(10 * 2**20)
