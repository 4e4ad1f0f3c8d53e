"""The server's Prometheus metrics, served at ``/metrics`` (docs/metrics.md lists each).

Events are counted where they happen (a boot, a call's end, a gateway response);
what is true *now* (queue depth, containers by state, snapshots on disk) is read
from the live pools and the store when Prometheus scrapes (``_LiveState``), so no
code has to keep a gauge in step. Each server has a registry of its own, not
prometheus_client's global one: several servers in one process (tests) don't mix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from coldsnap.engine.store_traffic import count_store_bytes, store_bytes
from coldsnap.wire.errors import REMOTE

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics", "count_store_bytes"]

# From a warm restore (~50 ms) to a cold boot that imports torch (tens of seconds).
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FUNCTION = ("app", "function")

# The text format would add a `_created` gauge beside every counter and histogram: a
# second family each, which Prometheus does not need (it sees resets itself). The
# switch is the library's, process-wide: the server's process is ours.
disable_created_metrics()


class ServerMetrics:
    """One server's metrics: ``booted``/``boot_failed``, ``call_ended``, ``http_response``
    count events; ``watch`` adds the live gauges; ``exposition`` is the scrape's body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.boots = Counter("coldsnap_boots", "Container boots, by kind and outcome",
                             [*FUNCTION, "kind", "outcome"], registry=r)
        self.boot_seconds = Histogram(
            "coldsnap_boot_seconds", "Seconds from a boot's start to its container's ready",
            [*FUNCTION, "kind"], buckets=SECONDS_BUCKETS, registry=r)
        self.restore_seconds = Histogram(
            "coldsnap_restore_seconds", "Seconds a restore from a memory snapshot took",
            FUNCTION, buckets=SECONDS_BUCKETS, registry=r)
        self.dump_seconds = Histogram(
            "coldsnap_dump_seconds", "Seconds the dump of a memory snapshot took",
            FUNCTION, buckets=SECONDS_BUCKETS, registry=r)
        self.calls = Counter("coldsnap_calls", "Calls ended, by outcome",
                             [*FUNCTION, "outcome"], registry=r)
        self.http_requests = Counter(
            "coldsnap_http_requests", "Requests the HTTP gateway answered (not /metrics), "
            "by status class", ["code"], registry=r)
        r.register(_StoreTraffic())

    def watch(self, pools: Callable[[], Iterable[Any]], store: Callable[[], Any]) -> None:
        """Report the live state at each scrape: ``pools()`` gives the pools (their
        ``stats()``), ``store()`` the engine's snapshot store or None."""
        self.registry.register(_LiveState(pools, store))

    def booted(self, app: str, function: str, kind: str, timings: Mapping[str, float],
               seconds: float) -> None:
        self.boots.labels(app, function, kind, "ok").inc()
        self.boot_seconds.labels(app, function, kind).observe(seconds)
        if "restore_s" in timings:
            self.restore_seconds.labels(app, function).observe(timings["restore_s"])
        if "dump_s" in timings:
            self.dump_seconds.labels(app, function).observe(timings["dump_s"])

    def boot_failed(self, app: str, function: str, kind: str) -> None:
        self.boots.labels(app, function, kind, "failed").inc()

    def call_ended(self, app: str, function: str, ok: bool, error_kind: str | None) -> None:
        self.calls.labels(app, function, call_outcome(ok, error_kind)).inc()

    def http_response(self, status: int) -> None:
        if status >= 200:  # an interim 1xx is no answer: its request's final one counts
            self.http_requests.labels(f"{status // 100}xx").inc()

    def exposition(self) -> bytes:
        """The text a scrape gets (content type ``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)


def call_outcome(ok: bool, error_kind: str | None) -> str:
    """``success``, ``failure`` (user code raised) or the error's kind (``timeout``,
    ``cancelled``, ``container_died``, ``boot_failed``...)."""
    if ok:
        return "success"
    if error_kind is None or error_kind == REMOTE:
        return "failure"
    return error_kind


class _LiveState:
    """Gauges read at scrape time: queue depth and containers per function, snapshots."""

    def __init__(self, pools: Callable[[], Iterable[Any]], store: Callable[[], Any]) -> None:
        self._pools = pools
        self._store = store

    def describe(self) -> list[Metric]:
        return [*self._function_gauges({}, {}), *self._snapshot_gauges(0, 0)]

    def collect(self) -> list[Metric]:
        queued: dict[tuple[str, str], int] = defaultdict(int)
        containers: dict[tuple[str, str, str], int] = defaultdict(int)
        for pool in self._pools():
            stats = pool.stats()
            function = (stats["app"], stats["tag"])
            queued[function] += stats["queued"]
            containers[(*function, "booting")] += stats["booting"]
            for state in ("idle", "busy"):
                containers[(*function, state)] += sum(
                    1 for c in stats["containers"] if c["state"] == state)
        store = self._store()
        infos = store.list() if store is not None else []
        return [*self._function_gauges(queued, containers),
                *self._snapshot_gauges(len(infos), sum(i.size_bytes for i in infos))]

    @staticmethod
    def _function_gauges(queued: Mapping[tuple[str, str], int],
                         containers: Mapping[tuple[str, str, str], int]) -> list[Metric]:
        depth = GaugeMetricFamily("coldsnap_queue_depth", "Inputs waiting for a container "
                                  "(calls and HTTP requests), per function", labels=FUNCTION)
        for (app, function), n in sorted(queued.items()):
            depth.add_metric([app, function], n)
        live = GaugeMetricFamily("coldsnap_containers", "Containers per function, by state",
                                 labels=[*FUNCTION, "state"])
        for (app, function, state), n in sorted(containers.items()):
            live.add_metric([app, function, state], n)
        return [depth, live]

    @staticmethod
    def _snapshot_gauges(count: int, size: int) -> list[Metric]:
        return [GaugeMetricFamily("coldsnap_snapshots", "Memory snapshots on this host's "
                                  "store", value=count),
                GaugeMetricFamily("coldsnap_snapshot_bytes", "Bytes of the memory snapshots "
                                  "on this host's store", value=size)]


class _StoreTraffic:
    """``count_store_bytes``'s totals (process-wide: see engine/store_traffic.py)."""

    def describe(self) -> list[Metric]:
        return [self._family({})]

    def collect(self) -> list[Metric]:
        return [self._family(store_bytes())]

    @staticmethod
    def _family(totals: Mapping[str, int]) -> Metric:
        family = CounterMetricFamily("coldsnap_store_bytes", "Bytes moved between this host "
                                     "and a remote snapshot store", labels=["direction"])
        for direction, n in sorted(totals.items()):
            family.add_metric([direction], n)
        return family
