"""`coldsnap bench fleet`: what the shared store (docs/store.md) gives a second host.

Two servers on this machine play two hosts with their own state dirs, sharing one
S3 store (SeaweedFS, started here) and one image dir (hosts of a fleet share the
image layout). Host A makes the embedder's snapshot and uploads it. Then, in
rounds, host B boots: plain (``cold``: no snapshot at all), from A's snapshot
with nothing of it here yet (``restored_remote``: fetch + restore; B keeps no chunk
cache and forgets the snapshot before each), and again once it holds the
snapshot (``restored_cached``: a local restore). Host A's own restores
(``restored_local``) give the single-host figure beside them. Last, A deploys a
one-line change and makes its snapshot: ``dedupe_new_fraction`` is what that
added to the store over that snapshot's size.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.bench.coldboot import REPO, SENTENCE, _summary
from coldsnap.bench.seaweed import Seaweed
from coldsnap.wire import ops

NAME = "fleet-embedder"
APP, PLAIN = "bench-fleet-embedder", "bench-fleet-embedder-plain"
EMBEDDER = REPO / "examples" / "embedder.py"
CHANGED_LINE = b"\nFLEET_BENCH_VERSION = 2  # the benchmark's one-line change\n"


class Host:
    """A ``coldsnap serve`` of its own state dir, as one host of the fleet."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.root = root
        self.env = {**os.environ, "COLDSNAP_STATE_DIR": str(root / "state"),
                    "COLDSNAP_ENGINE": "criu", **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Any = None

    def start(self, timeout: float = 60.0) -> Host:
        from coldsnap.client import Client
        from coldsnap.settings import Settings

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.conn = Client(Settings.from_env(self.env))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host {self.name}'s server exited; see "
                                   f"{self.root / 'server.log'}")
            try:
                self.conn.ping()
                return self
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"host {self.name}'s server did not answer in {timeout:g} s")

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def deploy(self, source: bytes, name: str, snapshots: bool = True) -> None:
        self.conn.deploy(source, EMBEDDER.name, name=name, snapshots=snapshots)

    def cold_call(self, app: str, settle_s: float) -> float:
        import cloudpickle

        from coldsnap.wire.serialization import dumps_args

        self.conn.drain(app)
        time.sleep(settle_s)
        t0 = time.perf_counter()
        blob = self.conn.call(app, "Embedder", "run", dumps_args((SENTENCE,), {}), None)
        elapsed = time.perf_counter() - t0
        if len(cloudpickle.loads(blob)[0]) != 384:
            raise RuntimeError(f"host {self.name}: the embedder answered wrong")
        return elapsed

    def snapshots(self, app: str) -> list[dict[str, Any]]:
        rows = self.conn.request(ops.SNAPSHOTS_LS)[0]["snapshots"]
        return [s for s in rows if s.get("app") == app and s.get("status") == "ready"]

    def forget(self, app: str) -> None:
        """Remove this host's copies of ``app``'s snapshots (the store keeps its own)."""
        for snapshot in self.snapshots(app):
            self.conn.request(ops.SNAPSHOT_RM, key=snapshot["key"])

    def boots(self, app: str, kind: str) -> list[dict[str, Any]]:
        boots = self.conn.request(ops.APP_STATS, app=app)[0]["boots"]
        return sorted((b for b in boots if b["ok"] and b["kind"] == kind),
                      key=lambda b: b["created_at"])


def run(runs: int, root: Path, log: Callable[[str], None], settle_s: float = 1.5
        ) -> dict[str, Any]:
    store = Seaweed().start()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    common = {**store.env(prefix), "COLDSNAP_IMAGE_DIR": str(root / "images"),
              "COLDSNAP_HTTP": "off"}  # memory kept warm: the servers' default, or the caller's
    a = Host("A", root / f"a-{prefix}", common)
    b = Host("B", root / f"b-{prefix}", {**common, "COLDSNAP_STORE_CACHE_MB": "0"})
    try:
        log(f"[{NAME}] S3 store {store.endpoint} (prefix {prefix}); hosts A and B")
        return _measure(a.start(), b.start(), store, prefix, runs, log, settle_s)
    finally:
        for host in (a, b):
            host.stop()
        store.cleanup()


def _measure(a: Host, b: Host, store: Seaweed, prefix: str, runs: int,
             log: Callable[[str], None], settle_s: float) -> dict[str, Any]:
    source = EMBEDDER.read_bytes()
    log(f"[{NAME}] host A: deploy, first boot makes the snapshot, upload")
    a.deploy(source, APP)
    first = a.cold_call(APP, settle_s)
    _wait_for_manifests(store, prefix, 1)
    b.deploy(source, APP)
    b.deploy(source, PLAIN, snapshots=False)
    cold, remote, cached, local = [], [], [], []
    for i in range(runs):
        cold.append(b.cold_call(PLAIN, settle_s))
        b.forget(APP)
        remote.append(b.cold_call(APP, settle_s))
        cached.append(b.cold_call(APP, settle_s))
        local.append(a.cold_call(APP, settle_s))
        log(f"[{NAME}] round {i + 1}/{runs}: B plain {cold[-1]:.3f} s, B from the store "
            f"{remote[-1]:.3f} s, B cached {cached[-1]:.3f} s, A local {local[-1]:.3f} s")
    fetches = [boot["timings"] for boot in b.boots(APP, "restored")
               if boot["timings"].get("fetch_bytes")][-runs:]
    result = {
        "name": NAME,
        "cold": _summary(cold), "restored_remote": _summary(remote),
        "restored_cached": _summary(cached), "restored_local": _summary(local),
        "first_boot_with_dump_s": round(first, 4),
        "fetch_bytes": int(statistics.median(f["fetch_bytes"] for f in fetches)),
        "fetch_s": round(statistics.median(f["fetch_s"] for f in fetches), 4),
        "restore_remote_s": round(statistics.median(f.get("restore_s", 0.0)
                                                    for f in fetches), 4),
        **_dedupe(a, store, prefix, source, settle_s, log),
    }
    for kind in ("remote", "cached", "local"):
        speedup = result["cold"]["median_s"] / result[f"restored_{kind}"]["median_s"]
        result[f"speedup_{kind}"] = round(speedup, 2)
    return result


def _dedupe(a: Host, store: Seaweed, prefix: str, source: bytes, settle_s: float,
            log: Callable[[str], None]) -> dict[str, Any]:
    before = sum(store.objects(prefix).values())
    log(f"[{NAME}] host A: a one-line change, its snapshot, its upload")
    a.deploy(source + CHANGED_LINE, APP)
    a.cold_call(APP, settle_s)
    _wait_for_manifests(store, prefix, 2)
    added = sum(store.objects(prefix).values()) - before
    newest = max(a.snapshots(APP), key=lambda s: s.get("created_at", 0))
    size = int(newest.get("size_bytes", 0))
    return {"snapshot_bytes": size, "dedupe_new_bytes": added,
            "dedupe_new_fraction": round(added / size, 4) if size else None}


def _wait_for_manifests(store: Seaweed, prefix: str, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(name.startswith("snapshots/") for name in store.objects(prefix)) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"no upload of snapshot {count} to the store within {timeout:g} s")


def print_table(row: dict[str, Any], ms: Callable[[float | None], str]) -> None:
    print("A second host and the shared store (medians; p90 in brackets):")
    print(f"{'host':<6}{'boot':<34}{'time':>20}{'speed-up':>10}")
    lines = [("B", "plain (no snapshot)", row["cold"], None),
             ("B", "from A's snapshot, fetched now", row["restored_remote"],
              row["speedup_remote"]),
             ("B", "from A's snapshot, held here", row["restored_cached"],
              row["speedup_cached"]),
             ("A", "from its own snapshot", row["restored_local"], row["speedup_local"])]
    for host, what, summary, speedup in lines:
        times = f"{ms(summary['median_s'])} ({ms(summary['p90_s'])})"
        print(f"{host:<6}{what:<34}{times:>20}"
              f"{f'{speedup:.1f}x' if speedup else '':>10}")
    print(f"fetch: {row['fetch_bytes'] / 1e6:.0f} MB in {ms(row['fetch_s'])} (then restore "
          f"{ms(row['restore_remote_s'])}); a one-line change added "
          f"{row['dedupe_new_bytes'] / 1e6:.1f} MB to the store = "
          f"{row['dedupe_new_fraction']:.3f} of its snapshot "
          f"({row['snapshot_bytes'] / 1e6:.0f} MB)")
