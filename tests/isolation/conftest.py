"""One criu server with the isolation probe app deployed, for every test here.

``call_probe(server, kind, name, *args)`` runs probe ``name`` of
tests/apps/isolation_probe.py in a plain (``"fresh"``) or a restored
(``"restored"``) container and returns its answer, or the server's error as
``{"error_kind": ..., "message": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu
from tests.isolation.outside import Outside

APP = "isolation-probe"
KINDS = ("fresh", "restored")
TARGETS = {
    "fresh": f"coldsnap.Cls.from_name({APP!r}, 'Probe')().fresh",
    "restored": f"coldsnap.Function.from_name({APP!r}, 'restored')",
}


@pytest.fixture(scope="module")
def probe_server() -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(APPS / "isolation_probe.py"))
        yield handle


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    host = Outside(tmp_path_factory.mktemp("outside"))
    yield host
    host.close()


def call_probe(server: ServerHandle, kind: str, name: str, *args: object) -> dict:
    result = server.python(
        "import json, coldsnap\n"
        "from coldsnap.wire.errors import ServerError\n"
        "try:\n"
        f"    print(json.dumps({TARGETS[kind]}.remote({name!r}, *{args!r})))\n"
        "except ServerError as exc:\n"
        "    print(json.dumps({'error_kind': exc.kind, 'message': str(exc)}))\n")
    answer: dict = json.loads(result.stdout.strip().splitlines()[-1])
    if "error_kind" not in answer:
        assert answer.pop("restored") == (kind == "restored"), answer
    return answer
