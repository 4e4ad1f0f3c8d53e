"""With CRIU: each parameter set of a snapshot class has a snapshot of its own, and its
restored containers see their own parameters (set before the enter(snap=True) hook)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import module_server, require_criu


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def test_each_parameter_set_has_a_snapshot_of_its_own(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "call_api.py"))
    code = ("import coldsnap\n"
            "G = coldsnap.Cls.from_name('test-call-api', 'Greeter')\n"
            "print(G(name='ada').greet.remote(), G(name='bo').greet.remote())\n")
    assert srv.python(code).stdout.split() == ["hello", "ada", "hello", "bo"]
    srv.cli("apps", "drain", "test-call-api")  # the next calls restore
    assert srv.python(code).stdout.split() == ["hello", "ada", "hello", "bo"]
    rows = [r for r in json.loads(srv.cli("snapshots", "ls", "--json").stdout)
            if r.get("app") == "test-call-api"]
    keys = sorted(r["key"] for r in rows)
    assert len(keys) == 2 and all("-Greeter-" in key for key in keys), rows
    boots = json.loads(srv.cli("apps", "stats", "test-call-api", "--json").stdout)["boots"]
    assert sum(b["kind"] == "restored" for b in boots) >= 2, boots
