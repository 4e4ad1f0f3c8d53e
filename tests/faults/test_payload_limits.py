"""Payload limits on the criu engine, against restored containers: a result over the
limit is an error that names it, the container lives on, and the next call is served."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu, stats, write_app

APP = """
import coldsnap

app = coldsnap.App("test-payload")


@app.function(enable_memory_snapshot=True)
def big(n_bytes: int) -> bytes:
    return b"Z" * n_bytes
"""

CALLER = """
import coldsnap

big = coldsnap.Function.from_name("test-payload", "big")
try:
    big.remote(2_000_000)
except Exception as exc:
    print(type(exc).__name__, "|", str(exc).replace(chr(10), " "))
try:
    big.remote(b"x" * 2_000_000)  # arguments over the limit: refused from the header
except Exception as exc:
    print(type(exc).__name__, "|", str(exc).replace(chr(10), " "))
print(len(big.remote(10)))
"""


def test_results_and_arguments_over_the_limit_on_restored_containers(
    server_factory: type[ServerHandle], tmp_path: Path
) -> None:
    require_criu()
    server = server_factory("criu", env={"COLDSNAP_MAX_PAYLOAD_BYTES": "1000000"}).start()
    server.cli("deploy", str(write_app(tmp_path, "payload", APP)))
    out = server.python(CALLER).stdout.splitlines()
    assert out[0].startswith("InvalidError | the result of big is 2000"), out
    assert "over the limit of 1000000 bytes (COLDSNAP_MAX_PAYLOAD_BYTES" in out[0]
    assert out[1].startswith("RequestSizeError | request refused: a payload of 2000"), out
    assert "exceeds the limit of 1000000 bytes" in out[1]
    assert out[2] == "10"
    [fn] = stats(server, "test-payload")["functions"]
    assert (fn["calls_error"], fn["calls_ok"], fn["calls_failed"], fn["boots_ok"]) == (
        1, 1, 0, 1)  # one restored container served both; none died
    assert stats(server, "test-payload")["boots"][-1]["kind"] == "snapshot-created"
