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

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.bench.coldboot import REPO, _summary
from coldsnap.bench.fleet_host import EMBEDDER, Host
from coldsnap.bench.provenance import provenance
from coldsnap.bench.seaweed import Seaweed

NAME = "fleet-embedder"
APP, PLAIN = "bench-fleet-embedder", "bench-fleet-embedder-plain"
CHANGED_LINE = b"\nFLEET_BENCH_VERSION = 2  # the benchmark's one-line change\n"


def run(runs: int, root: Path, log: Callable[[str], None], settle_s: float = 1.5
        ) -> dict[str, Any]:
    store = Seaweed()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    common = {**store.env(prefix), "COLDSNAP_IMAGE_DIR": str(root / "images"),
              "COLDSNAP_HTTP": "off"}  # memory kept warm: the servers' default, or the caller's
    a = Host("A", root / f"a-{prefix}", common)
    b = Host("B", root / f"b-{prefix}", {**common, "COLDSNAP_STORE_CACHE_MB": "0"})
    try:
        store.start()
        log(f"[{NAME}] S3 store {store.endpoint} (prefix {prefix}); hosts A and B")
        result = _measure(a.start(), b.start(), store, prefix, runs, log, settle_s)
    finally:
        _tear_down((a, b), store, log)
    return {**result, "hosts": {host.name: host.ran_with() for host in (a, b)},
            **provenance(REPO)}


def _tear_down(hosts: tuple[Host, ...], store: Seaweed, log: Callable[[str], None]) -> None:
    """Servers first (a running one holds mounts in its state), then the store, then each
    host's state dir: its snapshots, chunk cache and layers go, its server.log stays."""
    for host in hosts:
        host.stop()
    store.cleanup()
    for host in hosts:
        left = host.remove_state()
        if left:
            log(f"[{NAME}] host {host.name}: kept {host.root / 'state'}: still mounted at "
                f"{', '.join(left)}; `umount -l` those, then remove it")
        log(f"[{NAME}] host {host.name}: its server's log is {host.log_path}")


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
    for name, host in row.get("hosts", {}).items():
        held = host["warm_memory_held_mb"]
        print(f"host {name}: COLDSNAP_WARM_MEMORY_MB={host['warm_memory_mb']} "
              f"({f'{held} MB' if held else 'no memory'} kept warm); its server's log: "
              f"{host['server_log']}")
