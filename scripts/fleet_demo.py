"""The fleet demo (scripts/fleet-demo.sh runs it): a 3-node Ray cluster and a SeaweedFS
S3 store on this machine, a coldsnap control plane on the cluster, the embedder
deployed. One node makes the memory snapshot and uploads it; scaled to zero, three
calls at once then need three containers, one per node (each node has room for
one), and the nodes without the snapshot fetch it from the store and restore it. Prints, per
container: its node, how it booted, what it fetched and how long its restore took.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coldsnap.bench.seaweed import Seaweed  # noqa: E402

NODES = 3
APP = "fleet-demo-embedder"
BOOT_LINE = re.compile(r"\[(?P<id>cs-\w+)\] coldsnap: (?P<kind>[\w-]+) boot ready on host "
                       r"(?P<host>\S+) in (?P<ms>\d+) ms")


def main() -> int:
    from ray.cluster_utils import Cluster

    root = Path(tempfile.mkdtemp(prefix="coldsnap-fleet-demo-", dir="/tmp"))
    print(f"==> SeaweedFS (S3) and a Ray cluster of {NODES} coldsnap nodes; files in {root}")
    store = Seaweed().start()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    server = None
    try:
        for _ in range(NODES):
            cluster.add_node(num_cpus=1, resources={"coldsnap": 1})
        cluster.wait_for_nodes()
        env = {**os.environ, **store.env("fleet-demo"),
               "COLDSNAP_STATE_DIR": str(root / "state"), "COLDSNAP_HTTP": "off",
               "COLDSNAP_CLUSTER": f"ray://{cluster.address}", "COLDSNAP_CONTAINER_CPUS": "1"}
        server = subprocess.Popen([sys.executable, "-m", "coldsnap.cli.main", "serve"], env=env,
                                  stdout=open(root / "server.log", "ab"),
                                  stderr=subprocess.STDOUT)
        cli = [sys.executable, "-m", "coldsnap.cli.main"]
        _wait_for_server(cli, env)
        print("==> coldsnap deploy examples/embedder.py")
        subprocess.run([*cli, "deploy", "--name", APP, str(REPO / "examples" / "embedder.py")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        print("==> first call: one node makes the snapshot and uploads it")
        _call(env)
        _wait_for_upload(store)
        print(f"==> scale to zero, then {NODES} calls at once: a cold boot on every node")
        subprocess.run([*cli, "apps", "drain", APP], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        with ThreadPoolExecutor(NODES) as calls:
            list(calls.map(lambda _: _call(env, sentences=3000), range(NODES)))
        log = subprocess.run([*cli, "logs", APP, "-n", "100000"], env=env, check=True,
                             capture_output=True, text=True).stdout
        stats = json.loads(subprocess.run([*cli, "apps", "stats", APP, "--json"], env=env,
                                          check=True, capture_output=True, text=True).stdout)
        _print_table(log, stats["boots"])
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(120)
        cluster.shutdown()
        store.cleanup()


def _call(env: dict[str, str], sentences: int = 1) -> None:
    """One call of the embedder; many sentences keep its container busy for seconds, so
    calls at the same time need containers of their own."""
    code = ("import coldsnap\n"
            f"E = coldsnap.Cls.from_name({APP!r}, 'Embedder')\n"
            f"texts = ['what is the meaning of life, %d times?' % i for i in range({sentences})]\n"
            f"assert len(E().run.remote(texts)) == {sentences}\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _wait_for_server(cli: list[str], env: dict[str, str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run([*cli, "apps", "ls"], env=env, capture_output=True).returncode == 0:
            return
        time.sleep(1)
    raise SystemExit("the coldsnap control plane did not start; see its server.log")


def _wait_for_upload(store: Seaweed, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(name.startswith("snapshots/") for name in store.objects("fleet-demo")):
            return
        time.sleep(1)
    raise SystemExit("the snapshot was not uploaded to the store in time")


def _print_table(log: str, boots: list[dict]) -> None:
    """A row per container: its node (from its boot line), how it booted, and its boot's
    timings (`coldsnap apps stats`)."""
    nodes = {m["id"]: m["host"] for m in BOOT_LINE.finditer(log)}
    print()
    print(f"{'container':<16}{'node':<16}{'boot':<18}{'fetched from the store':>24}"
          f"{'restore':>10}{'boot':>10}")
    for boot in sorted(boots, key=lambda b: b["created_at"]):
        timings = boot["timings"]
        fetch = (f"{timings['fetch_bytes'] / 1e6:.0f} MB in {timings['fetch_s'] * 1000:.0f} ms"
                 if timings.get("fetch_bytes") else "-")
        restore = f"{timings['restore_s'] * 1000:.0f} ms" if "restore_s" in timings else "-"
        print(f"{boot['container_id']:<16}{nodes.get(boot['container_id'], '?'):<16}"
              f"{boot['kind']:<18}{fetch:>24}{restore:>10}{timings['boot_s'] * 1000:>8.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
