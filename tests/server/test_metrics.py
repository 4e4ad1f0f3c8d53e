"""/metrics: what a scrape of a real server (CRIU) shows after boots and calls; the
token it needs; docs/metrics.md lists exactly the metrics exported."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coldsnap.engine.store_traffic import count_store_bytes
from coldsnap.server.metrics import ServerMetrics, call_outcome
from tests.conftest import APPS, REPO, ServerHandle
from tests.end_to_end import module_server, require_criu, wait_for

APP = "test-metrics"
SPAWN = """
import coldsnap
f = coldsnap.Function.from_name("test-metrics", "{name}")
calls = [f.spawn({arg}) for _ in range({n})]
{wait}
"""
FAIL = """
import coldsnap
try:
    coldsnap.Function.from_name("test-metrics", "fail").remote()
except ValueError as exc:
    print("raised", exc)
"""
CALL_BROKEN = """
import coldsnap
try:
    coldsnap.Cls.from_name("test-failing-hooks", "Broken")().run.remote()
except Exception as exc:
    print(type(exc).__name__)
"""


def documented() -> dict[str, str]:
    """name -> type, from the table in docs/metrics.md."""
    text = (REPO / "docs" / "metrics.md").read_text()
    return dict(re.findall(r"^\| `(coldsnap_[a-z_]+)` \| (counter|gauge|histogram) \|", text,
                           re.MULTILINE))


def exported(text: str) -> dict[str, str]:
    """name -> type, from a scrape's # TYPE lines."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def test_the_doc_lists_exactly_the_metrics_exported() -> None:
    metrics = ServerMetrics()
    metrics.watch(lambda: [], lambda: None)
    assert documented() == exported(metrics.exposition().decode())


def test_call_outcomes() -> None:
    assert call_outcome(True, None) == "success"
    assert call_outcome(False, "remote") == "failure"  # user code raised
    assert call_outcome(False, "timeout") == "timeout"
    assert call_outcome(False, "cancelled") == "cancelled"


def test_store_traffic_is_counted_and_checked() -> None:
    metrics = ServerMetrics()
    before = value(metrics.exposition().decode(), "coldsnap_store_bytes_total",
                   direction="uploaded")
    count_store_bytes("uploaded", 1234)
    after = value(metrics.exposition().decode(), "coldsnap_store_bytes_total",
                  direction="uploaded")
    assert after - before == 1234
    with pytest.raises(ValueError, match="direction must be one of fetched, uploaded, "
                       "not 'sideways'"):
        count_store_bytes("sideways", 1)


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    yield from module_server("criu")


def scrape(server: ServerHandle, token: str | None = None, host: str | None = None) -> str:
    token = server.settings.token_path.read_text().strip() if token is None else token
    request = urllib.request.Request(server.http + "/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
    if host:
        request.add_header("Host", host)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode())


def test_the_cli_prints_the_same_metrics(srv: ServerHandle) -> None:
    text = srv.cli("metrics").stdout
    assert exported(text) == documented()
    assert value(text, "coldsnap_snapshots") == value(scrape(srv), "coldsnap_snapshots")


def test_metrics_need_the_server_token(srv: ServerHandle) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        scrape(srv, token="wrong")
    assert caught.value.code == 401
    assert "/metrics needs the server token: send `Authorization: Bearer TOKEN`" in (
        caught.value.read().decode())


def test_a_web_endpoints_own_metrics_path_is_the_endpoints(srv: ServerHandle) -> None:
    before = value(scrape(srv), "coldsnap_http_requests_total", code="4xx")
    with pytest.raises(urllib.error.HTTPError) as caught:
        scrape(srv, host="nosuch--endpoint.localhost")  # routed to that endpoint: none
    assert caught.value.code == 404
    assert caught.value.read().decode().startswith("coldsnap gateway: ")  # not metrics
    assert value(scrape(srv), "coldsnap_http_requests_total", code="4xx") == before + 1


def test_boots_calls_and_histograms(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "metrics_app.py"))
    fn = {"app": APP, "function": "nap"}
    # Two calls at once: one boot makes the snapshot, the other waits for it and restores.
    srv.python(SPAWN.format(name="nap", arg=2.0, n=2,
                            wait="assert [c.get() for c in calls] == [2.0, 2.0]"))
    text = scrape(srv)
    assert value(text, "coldsnap_boots_total", kind="snapshot-created", outcome="ok",
                 **fn) == 1
    assert value(text, "coldsnap_boots_total", kind="restored", outcome="ok", **fn) >= 1
    assert value(text, "coldsnap_calls_total", outcome="success", **fn) == 2
    assert value(text, "coldsnap_dump_seconds_count", **fn) == 1
    assert value(text, "coldsnap_dump_seconds_sum", **fn) > 0
    assert value(text, "coldsnap_restore_seconds_count", **fn) >= 2  # the creator restores too
    assert value(text, "coldsnap_boot_seconds_count", **fn) >= 2
    assert value(text, "coldsnap_snapshots") >= 1
    assert value(text, "coldsnap_snapshot_bytes") > 1_000_000

    assert "raised fail: raising on purpose" in srv.python(FAIL).stdout
    text = scrape(srv)
    assert value(text, "coldsnap_calls_total", app=APP, function="fail",
                 outcome="failure") == 1
    assert value(text, "coldsnap_boots_total", app=APP, function="fail", kind="plain",
                 outcome="ok") == 1


def test_a_failed_boot_and_its_call(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "failing_hooks.py"))  # enter(snap=True) raises
    srv.python(CALL_BROKEN)
    fn = {"app": "test-failing-hooks", "function": "Broken"}
    text = scrape(srv)
    # It failed making the snapshot: that is the kind it was trying.
    assert value(text, "coldsnap_boots_total", kind="snapshot-created", outcome="failed",
                 **fn) >= 1
    assert value(text, "coldsnap_boots_total", outcome="ok", **fn) == 0
    assert value(text, "coldsnap_calls_total", outcome="boot_failed", **fn) == 1


def test_queue_depth_and_containers_by_state(srv: ServerHandle) -> None:
    srv.cli("deploy", str(APPS / "metrics_app.py"))
    fn = {"app": APP, "function": "one_at_a_time"}
    srv.python(SPAWN.format(name="one_at_a_time", arg=4.0, n=3, wait=""))

    def waiting() -> str | None:
        text = scrape(srv)
        busy = value(text, "coldsnap_containers", state="busy", **fn)
        return text if busy == 1 and value(text, "coldsnap_queue_depth", **fn) == 2 else None

    text = wait_for(waiting, 60, "one busy container and two queued inputs")
    assert value(text, "coldsnap_containers", state="idle", **fn) == 0
    assert value(text, "coldsnap_containers", state="booting", **fn) == 0
    wait_for(lambda: value(scrape(srv), "coldsnap_queue_depth", **fn) == 0, 60,
             "the queue to drain")

