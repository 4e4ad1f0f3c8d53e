"""``@coldsnap.concurrent`` end to end: parallel calls share one container up to
max_inputs and boot more past it; async inputs are tasks on one loop; a class restored
from its snapshot serves concurrent inputs; a timed-out input stops its container and
its neighbours hear why. On the none engine and on the criu engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerHandle
from tests.end_to_end import module_server, require_criu, stats, wait_for, write_app

APPS = Path(__file__).resolve().parents[1] / "apps"
NAP_S = 3.0  # long enough that inputs run one after another would not overlap


@pytest.fixture(scope="module", params=["none", "criu"])
def srv(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    if request.param == "criu":
        require_criu()
    for handle in module_server(request.param):
        handle.cli("deploy", str(APPS / "concurrent_inputs.py"))
        yield handle


def _spawn_all(srv: ServerHandle, target: str, args: list[float]) -> list[dict[str, Any]]:
    """Spawn ``target`` once per arg at once (``F`` is the function, ``C`` the class);
    each input's report, in order."""
    out = srv.python(
        "import json, coldsnap\n"
        "F = lambda tag: coldsnap.Function.from_name('test-concurrent', tag)\n"
        "C = coldsnap.Cls.from_name('test-concurrent', 'Snapped')\n"
        f"calls = [{target}.spawn(a) for a in {args!r}]\n"
        "print(json.dumps([c.get() for c in calls]))\n", timeout=180)
    reports: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return reports


def _overlapping(reports: list[dict[str, Any]]) -> bool:
    """True when every input was running at one moment: the last start before the first end."""
    return max(r["start"] for r in reports) < min(r["end"] for r in reports)


def _function(srv: ServerHandle, tag: str) -> dict[str, Any]:
    return next(f for f in stats(srv, "test-concurrent")["functions"] if f["tag"] == tag)


def test_n_parallel_calls_share_one_container_when_max_inputs_allows(
        srv: ServerHandle) -> None:
    reports = _spawn_all(srv, "F('nap')", [NAP_S] * 4)
    assert len({r["container"] for r in reports}) == 1, reports
    assert len({r["thread"] for r in reports}) == 4  # sync inputs: a thread each
    assert _overlapping(reports), reports  # about one nap's time, not four
    fn = _function(srv, "nap")
    assert (fn["boots_ok"], fn["calls_ok"], fn["max_inputs"]) == (1, 4, 4)
    table = srv.cli("apps", "stats", "test-concurrent").stdout
    assert "INPUTS" in table and "0 (of 4)" in table  # one idle container, 4 slots


def test_past_max_inputs_more_containers_boot(srv: ServerHandle) -> None:
    reports = _spawn_all(srv, "F('nap_in_twos')", [NAP_S] * 4)
    by_container: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        by_container.setdefault(report["container"], []).append(report)
    # 4 inputs, 2 per container: two containers, two at once in each.
    assert sorted(len(v) for v in by_container.values()) == [2, 2], reports
    assert all(_overlapping(v) for v in by_container.values()), reports
    assert _function(srv, "nap_in_twos")["boots_ok"] == 2


def test_async_inputs_are_tasks_on_one_event_loop(srv: ServerHandle) -> None:
    reports = _spawn_all(srv, "F('async_nap')", [NAP_S] * 4)
    assert len({r["container"] for r in reports}) == 1
    assert len({r["thread"] for r in reports}) == 1 and len({r["loop"] for r in reports}) == 1
    assert _overlapping(reports), reports


def test_each_caller_sees_its_own_inputs_log_lines(srv: ServerHandle) -> None:
    def call(seconds: float) -> tuple[dict[str, Any], str]:
        out = srv.python("import json, coldsnap\n"
                         "F = coldsnap.Function.from_name('test-concurrent', 'nap')\n"
                         f"print(json.dumps(F.remote({seconds})))", timeout=180)
        return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr

    with ThreadPoolExecutor(2) as callers:  # two processes, one container, at once
        (first, first_log), (second, second_log) = callers.map(call, [NAP_S, NAP_S + 0.5])
    assert first["container"] == second["container"] and _overlapping([first, second])
    assert f"nap {NAP_S} starts" in first_log and f"nap {NAP_S + 0.5}" not in first_log
    assert f"nap {NAP_S + 0.5} starts" in second_log and f"nap {NAP_S} " not in second_log
    assert "\x1e" not in first_log + second_log  # the tags are the server's to strip


def test_a_restored_class_serves_concurrent_inputs(srv: ServerHandle) -> None:
    first = _spawn_all(srv, "C().run", [0.0])[0]
    wait_for(lambda: not _function(srv, "Snapped")["containers"], 30, "Snapped to scale down")
    reports = _spawn_all(srv, "C().run", [NAP_S] * 3)
    assert len({r["container"] for r in reports}) == 1 and reports[0]["container"] != \
        first["container"]
    assert _overlapping(reports), reports
    assert {r["weights"] for r in reports} == {"loaded before the snapshot"}
    kinds = {b["container_id"]: b["kind"] for b in stats(srv, "test-concurrent")["boots"]}
    if srv.engine == "criu":
        assert (kinds[first["container"]], kinds[reports[0]["container"]]) == (
            "snapshot-created", "restored")


def test_cls_with_concurrency_runs_a_plain_class_concurrently(srv: ServerHandle) -> None:
    reports = _spawn_all(srv, "coldsnap.Cls.from_name('test-concurrent', 'Plain')"
                         ".with_concurrency(max_inputs=3)().run", [NAP_S] * 3)
    assert len({r["container"] for r in reports}) == 1 and _overlapping(reports), reports
    pools = [f for f in stats(srv, "test-concurrent")["functions"] if f["tag"] == "Plain"]
    assert [(p["max_inputs"], p["calls_ok"]) for p in pools] == [(3, 3)]
    # The server checks an override too (a client may send anything).
    out = srv.python(
        "from coldsnap.client import Client\n"
        "from coldsnap.wire.errors import ServerError\n"
        "from coldsnap.wire.serialization import dumps_args\n"
        "try:\n"
        "    Client.default().call('test-concurrent', 'Plain', 'run', dumps_args((0,), {}),\n"
        "                          variant={'options': {'max_inputs': 2, 'target_inputs': 5}})\n"
        "except ServerError as exc:\n"
        "    print(exc.kind, '|', exc)\n", timeout=120)
    assert out.stdout.startswith("bad_request | "), out.stdout
    assert "target_inputs (5) is above max_inputs (2)" in out.stdout


def test_a_timed_out_input_stops_its_container_and_its_neighbours_hear_why(
        srv: ServerHandle) -> None:
    out = srv.python(
        "import time, coldsnap\n"
        "from coldsnap.wire.errors import ServerError\n"
        "F = coldsnap.Function.from_name('test-concurrent', 'hang')\n"
        "F.remote(0)  # a warm container: the first input starts at once\n"
        "first = F.spawn(60)\n"
        "time.sleep(1.5)\n"
        "second = F.spawn(60)  # same container, 1.5 s of its own timeout left at the kill\n"
        "for call in (first, second):\n"
        "    try:\n"
        "        call.get()\n"
        "    except ServerError as exc:\n"
        "        print(exc.kind, '|', exc)\n", timeout=180)
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first.startswith("timeout | call fc-") and "timeout of 4 s" in first, first
    first_id = first.split()[3]
    assert second.startswith("container_died | container cs-"), second
    assert (f"was stopped while running test-concurrent/hang (attempt 1 of 1): call "
            f"{first_id} to test-concurrent/hang ran longer than its timeout of 4 s") in second
    assert out.stdout.count("|") == 2
    fn = _function(srv, "hang")
    assert fn["calls_failed"] == 2


def test_a_container_dying_under_several_inputs_fails_them_all(srv: ServerHandle) -> None:
    out = srv.python(
        "import time, coldsnap\n"
        "from coldsnap.wire.errors import ServerError\n"
        "F = coldsnap.Function.from_name('test-concurrent', 'hang')\n"
        "F.remote(0)  # a warm container\n"
        "calls = [F.spawn(60), F.spawn(60)]\n"
        "time.sleep(1)\n"
        "calls.append(F.spawn(-1))  # exits the container\n"
        "for call in calls:\n"
        "    try:\n"
        "        call.get()\n"
        "    except ServerError as exc:\n"
        "        print(exc.kind, '|', exc)\n", timeout=180)
    lines = out.stdout.strip().splitlines()[-3:]
    assert all(line.startswith("container_died | container cs-") for line in lines), lines
    assert all("exited (exit status 3) while running" in line for line in lines), lines


def test_misuse_is_refused_at_deploy(srv: ServerHandle, tmp_path: Path) -> None:
    app = write_app(tmp_path, "bad_conc", """
        import coldsnap
        app = coldsnap.App("test-bad-concurrent")

        @app.function()
        @coldsnap.concurrent(max_inputs=2, target_inputs=3)
        def f() -> None: ...
        """)
    result = srv.cli("deploy", str(app), check=False)
    assert result.returncode != 0
    assert "target_inputs (3) is above max_inputs (2)" in result.stdout + result.stderr
