"""Restore latency against snapshot size, next to memcpy of the same bytes.

Each ``restore-<size>`` workload snapshots a worker that touched that much
heap, then restores it ``repeats`` times (one at a time) and times the path a
cold boot takes: mount the overlay root, ``criu restore``, first answer on the
control pipe. In the same run it times a memcpy of as many bytes between two
pre-touched buffers, and the ratio between the two.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coldsnap.settings import Settings

if TYPE_CHECKING:  # `coldsnap --help` lists the sizes: it must not load the engine
    from coldsnap.engine.base import Container, ContainerSpec

WORKER = Path(__file__).with_name("size_worker.py")
SIZES_MB = {"restore-50mb": 50, "restore-300mb": 300, "restore-1gb": 1024}


def run(names: list[str], settings: Settings, repeats: int = 7) -> list[dict[str, Any]]:
    from coldsnap.engine.criu_engine import CriuEngine

    engine = CriuEngine(settings)
    try:
        return [_one(engine, name, SIZES_MB[name], repeats) for name in names]
    finally:
        engine.close()


def _spec(heap_mb: int) -> ContainerSpec:
    from coldsnap.engine.base import ContainerSpec

    return ContainerSpec(
        argv=[sys.executable, str(WORKER)],
        env={"WORKER_HEAP_MB": str(heap_mb)},
        snapshot_phase=True,
    )


def _ping(container: Container) -> None:
    container.ctrl_in.write(b"ping\n")
    container.ctrl_in.flush()
    if container.ctrl_out.readline() != b"pong\n":
        raise RuntimeError(f"restored worker {container.id} did not answer")


def _one(engine: Any, name: str, heap_mb: int, repeats: int) -> dict[str, Any]:
    key = f"bench-{name}-{time.time_ns()}"
    print(f"[{name}] snapshotting a worker with {heap_mb} MB of heap ...", file=sys.stderr)
    container = engine.start(_spec(heap_mb))
    if container.ctrl_out.readline() != b"ready\n":
        raise RuntimeError(f"the {name} worker did not start")
    info = engine.checkpoint(container, key, labels={"app": "bench", "function": name})
    restores = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        copy = engine.restore(key, _spec(heap_mb))
        _ping(copy)
        elapsed = time.perf_counter() - t0
        copy.kill()
        if i:  # the first restore warms the page cache and CRIU's kdat cache
            restores.append(elapsed)
    engine.store.delete(key)
    memcpy_s = _memcpy_seconds(info.size_bytes)
    median = statistics.median(restores)
    return {
        "name": name,
        "snapshot_bytes": info.size_bytes,
        "dump_s": round(info.dump_s, 4),
        "restore_median_s": round(median, 4),
        "restore_min_s": round(min(restores), 4),
        "restore_samples_s": [round(r, 4) for r in restores],
        "memcpy_s": round(memcpy_s, 4),
        "ratio": round(median / memcpy_s, 2),
        # The target: at most 4x memcpy plus 40 ms of fixed overhead.
        "target_s": round(4 * memcpy_s + 0.040, 4),
    }


def _memcpy_seconds(nbytes: int, repeats: int = 5) -> float:
    import numpy as np

    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.zeros(nbytes, dtype=np.uint8)
    dst[:] = 1  # touch every page first: this measures the copy, not page faults
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'workload':<16}{'snapshot':>11}{'restore':>11}{'memcpy':>10}{'ratio':>8}{'target':>10}")
    for r in rows:
        size_mb = r["snapshot_bytes"] / 2**20
        print(
            f"{r['name']:<16}{size_mb:>9.0f}MB{r['restore_median_s'] * 1000:>9.0f}ms"
            f"{r['memcpy_s'] * 1000:>8.0f}ms{r['ratio']:>7.1f}x{r['target_s'] * 1000:>8.0f}ms"
        )


def main(names: list[str], json_path: Path | None, repeats: int) -> int:
    settings = Settings.from_env()
    rows = run(names, settings, repeats)
    print_table(rows)
    if json_path:
        json_path.write_text(json.dumps({"workloads": rows}, indent=2))
        print(f"wrote {json_path}", file=sys.stderr)
    return 0
