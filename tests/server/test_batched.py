"""``@coldsnap.batched`` end to end, on the criu engine: single calls made at once run
as batches in one container (each result says the size of its batch), a lone call waits
about wait_ms, a batch's exception reaches each of its callers, a result list of the
wrong length is an error for each, and a class restored from its snapshot serves a
batched method."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats

APPS = Path(__file__).resolve().parents[1] / "apps"
PREAMBLE = ("import json, time, coldsnap\n"
            "F = lambda tag: coldsnap.Function.from_name('batched-inputs', tag)\n"
            "Scaler = coldsnap.Cls.from_name('batched-inputs', 'Scaler')\n")


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("deploy", str(APPS / "batched_inputs.py"))
        yield handle


def _run(srv: ServerHandle, code: str) -> Any:
    """Run ``code`` (after PREAMBLE) in a client; the JSON it printed last."""
    out = srv.python(PREAMBLE + code, timeout=180)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _function(srv: ServerHandle, tag: str) -> dict[str, Any]:
    return next(f for f in stats(srv, "batched-inputs")["functions"] if f["tag"] == tag)


def test_calls_made_at_once_run_as_one_batch_in_one_container(srv: ServerHandle) -> None:
    results = _run(srv, "calls = [F('add').spawn(i, 100 * i) for i in range(4)]\n"
                        "print(json.dumps([c.get() for c in calls]))\n")
    assert results == [[101 * i, 4] for i in range(4)], results
    fn = _function(srv, "add")
    assert (fn["boots_ok"], fn["calls_ok"], fn["max_inputs"]) == (1, 4, 4)


def test_map_groups_inputs_up_to_max_batch_size(srv: ServerHandle) -> None:
    results = _run(srv, "print(json.dumps(list(F('add').map(range(10), range(10)))))\n")
    assert [value for value, _ in results] == [2 * i for i in range(10)]
    sizes = [size for _, size in results]
    assert max(sizes) <= 4 and max(sizes) > 1, sizes  # grouped, never past max_batch_size


def test_a_lone_call_waits_about_wait_ms(srv: ServerHandle) -> None:
    _run(srv, "print(json.dumps(F('lone').remote(time.time())))\n")  # boots the container
    waited = _run(srv, "print(json.dumps(F('lone').remote(time.time())))\n")
    assert 0.25 <= waited < 10.0, waited  # wait_ms=300, then it runs alone


def test_each_caller_of_a_failed_batch_gets_the_exception(srv: ServerHandle) -> None:
    errors = _run(srv, "calls = [F('fails').spawn(x) for x in (1, 13, 2)]\n"
                       "out = []\n"
                       "for c in calls:\n"
                       "    try:\n"
                       "        out.append(['ok', c.get()])\n"
                       "    except Exception as exc:\n"
                       "        out.append([type(exc).__name__, str(exc)])\n"
                       "print(json.dumps(out))\n")
    assert all(kind == "ValueError" and "13 is unlucky" in text for kind, text in errors), errors
    bad = _run(srv, "calls = [F('too_short').spawn(x) for x in (1, 2)]\n"
                    "out = []\n"
                    "for c in calls:\n"
                    "    try:\n"
                    "        out.append(['ok', c.get()])\n"
                    "    except Exception as exc:\n"
                    "        out.append([type(exc).__name__, str(exc)])\n"
                    "print(json.dumps(out))\n")
    assert len(bad) == 2
    for kind, text in bad:
        assert kind != "ok" and "must return a list with one element per input" in text, bad


def test_a_snapshotted_class_serves_a_batched_method(srv: ServerHandle) -> None:
    results = _run(srv, "calls = [Scaler().scale.spawn(i) for i in range(3)]\n"
                        "print(json.dumps([c.get() for c in calls]))\n")
    assert results == [[10 * i, 3] for i in range(3)], results
    table = srv.cli("snapshots", "ls").stdout
    assert "Scaler" in table, table
