"""The fleet demo (scripts/fleet-demo.sh runs it): a 3-node Ray cluster and a SeaweedFS
S3 store on this machine, a coldsnap control plane on the cluster, the embedder
deployed. One node makes the memory snapshot and uploads it; scaled to zero, three
calls at once then need three containers, one per node (each node has room for
one), and the nodes without the snapshot fetch it from the store and restore it. Prints, per
container: its node, how it booted, and its boot's parts (fetch, sandbox, restore, the
rest), which add up to its boot time; a boot that failed is a row saying so, its error
below the table. A note under it says what the times depend on here: the nodes share this
machine's cores and the last boots ran at once.

Its files (the control plane's state, the hosts' snapshots and images, server.log) go
to a directory under /tmp, removed at the end unless the demo failed or ``--keep``
was given: then it says where they are and how big.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coldsnap.bench.seaweed import Seaweed  # noqa: E402

NODES = 3
APP = "fleet-demo-embedder"
JOIN_TIMEOUT_S = 180.0  # Ray starts an agent per node; each loads coldsnap and its engine
RAY_SESSIONS = Path("/tmp/ray")  # where Ray keeps a session dir per cluster it starts
CLI = [sys.executable, "-m", "coldsnap.cli.main"]


class DemoFailed(Exception):
    """A step of the demo went wrong; the message says which and where to look."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true",
                        help="keep the demo's files (state, snapshots, logs) at the end")
    keep = parser.parse_args().keep
    root = Path(tempfile.mkdtemp(prefix="coldsnap-fleet-demo-", dir="/tmp"))
    print(f"==> SeaweedFS (S3) and a Ray cluster of {NODES} coldsnap nodes; files in {root}")
    try:
        failed_calls = _run(root)
    except (DemoFailed, subprocess.CalledProcessError) as exc:
        print(f"\nthe demo failed: {exc}", file=sys.stderr)
        _leave_files(root, keep=True)
        return 1
    _leave_files(root, keep or bool(failed_calls))
    return 1 if failed_calls else 0


def _run(root: Path) -> int:
    """The demo itself; returns how many of the concurrent calls failed."""
    from ray.cluster_utils import Cluster

    store = Seaweed().start()
    sessions = set(RAY_SESSIONS.glob("session_*"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    server = None
    try:
        for _ in range(NODES):
            cluster.add_node(num_cpus=1, resources={"coldsnap": 1})
        cluster.wait_for_nodes()
        env = {**os.environ, **store.env("fleet-demo"),
               "COLDSNAP_STATE_DIR": str(root / "state"), "COLDSNAP_HTTP": "off",
               "COLDSNAP_CLUSTER": f"ray://{cluster.address}", "COLDSNAP_CONTAINER_CPUS": "1"}
        with open(root / "server.log", "ab") as log:
            server = subprocess.Popen([*CLI, "serve"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        _wait_for_hosts(env, root)
        print("==> coldsnap deploy examples/embedder.py")
        subprocess.run([*CLI, "deploy", "--name", APP, str(REPO / "examples" / "embedder.py")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        print("==> first call: one node makes the snapshot and uploads it")
        if not _call(env):
            raise DemoFailed(f"the first call failed; see {root / 'server.log'}")
        _wait_for_upload(store)
        print(f"==> scale to zero, then {NODES} calls at once: a cold boot on every node")
        subprocess.run([*CLI, "apps", "drain", APP], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        with ThreadPoolExecutor(NODES) as calls:
            answered = list(calls.map(lambda _: _call(env, sentences=3000), range(NODES)))
        stats = json.loads(subprocess.run([*CLI, "apps", "stats", APP, "--json"], env=env,
                                          check=True, capture_output=True, text=True).stdout)
        _print_table(stats["boots"])
        failed = answered.count(False)
        if failed:
            print(f"\n{failed} of the {NODES} calls failed (their errors are above); "
                  f"see {root / 'server.log'}")
        return failed
    finally:
        if server is not None:
            server.terminate()
            server.wait(120)
        cluster.shutdown()
        store.cleanup()
        _remove_ray_sessions(sessions)


def _call(env: dict[str, str], sentences: int = 1) -> bool:
    """One call of the embedder; many sentences keep its container busy for seconds, so
    calls at the same time need containers of their own. False when it failed (the
    caller's error is printed as it came)."""
    code = ("import coldsnap\n"
            f"E = coldsnap.Cls.from_name({APP!r}, 'Embedder')\n"
            f"texts = ['what is the meaning of life, %d times?' % i for i in range({sentences})]\n"
            f"assert len(E().run.remote(texts)) == {sentences}\n")
    return subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def _wait_for_hosts(env: dict[str, str], root: Path) -> None:
    """Until the control plane answers and all NODES hosts have joined its fleet (its
    ping lists them): three calls at once need a host each."""
    from coldsnap.client import Client
    from coldsnap.settings import Settings
    from coldsnap.wire.errors import ServerUnavailable

    client = Client(Settings.from_env(env))
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    hosts: list[str] = []
    answered = False
    try:
        while time.monotonic() < deadline:
            try:
                hosts = sorted(h["host"] for h in client.ping().get("hosts") or [])
                answered = True
            except (ServerUnavailable, PermissionError):
                pass  # not listening yet
            if len(hosts) >= NODES:
                print(f"==> {len(hosts)} hosts in the fleet: {', '.join(hosts)}")
                return
            time.sleep(1)
    finally:
        client.close()
    if not answered:
        raise DemoFailed(f"the coldsnap control plane did not start in {JOIN_TIMEOUT_S:.0f} s; "
                         f"see {root / 'server.log'}")
    raise DemoFailed(f"only {len(hosts)} of the {NODES} Ray nodes joined the fleet in "
                     f"{JOIN_TIMEOUT_S:.0f} s ({', '.join(hosts) or 'none'}); each node's "
                     f"agent says why it did not in {root / 'server.log'}")


def _wait_for_upload(store: Seaweed, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(name.startswith("snapshots/") for name in store.objects("fleet-demo")):
            return
        time.sleep(1)
    raise DemoFailed(f"the snapshot was not uploaded to the store in {timeout:.0f} s")


COLUMNS = (("container", 16), ("node", 16), ("boot", 18))  # left-aligned, then the times
TIMES = (("fetched from the store", 24), ("sandbox", 10), ("restore", 10), ("other", 10),
         ("boot", 10))


def _print_table(boots: list[dict[str, Any]]) -> None:
    """A row per container (`coldsnap apps stats`' boots): its node, how it booted, and
    its boot's parts, which add up to its boot time; a failed boot says so, with its
    error after the table. Then what the times depend on here (``_print_note``)."""
    print()
    print("".join(f"{name:<{width}}" for name, width in COLUMNS)
          + "".join(f"{name:>{width}}" for name, width in TIMES))
    errors = []
    for boot in sorted(boots, key=lambda b: b["created_at"]):
        node = boot.get("host") or "?"
        if not boot.get("ok"):
            errors.append(f"  {boot['container_id']}: {boot.get('error') or 'no error kept'}")
            _print_row(boot["container_id"], node, "failed", ["(error below)", *"----"])
            continue
        _print_row(boot["container_id"], node, boot["kind"], _boot_parts(boot.get("timings") or {}))
    if errors:
        print("\nfailed boots:\n" + "\n".join(errors))
    _print_note(boots)


def _print_row(container: str, node: str, kind: str, times: list[str]) -> None:
    print(f"{container:<16}{node:<16}{kind:<18}"
          + "".join(f"{text:>{width}}" for text, (_, width) in zip(times, TIMES, strict=True)))


def _boot_parts(timings: dict[str, float]) -> list[str]:
    """A boot's fetch, sandbox, restore, the rest of it (``other``) and its total."""
    fetch = (f"{timings['fetch_bytes'] / 1e6:.0f} MB in {timings['fetch_s'] * 1000:.0f} ms"
             if timings.get("fetch_bytes") else "-")
    other = None
    if "boot_s" in timings:
        shown = sum(timings.get(part, 0.0) for part in ("fetch_s", "sandbox_s", "restore_s"))
        other = max(0.0, timings["boot_s"] - shown)
    return [fetch, _ms(timings.get("sandbox_s")), _ms(timings.get("restore_s")), _ms(other),
            _ms(timings.get("boot_s"))]


def _print_note(boots: list[dict[str, Any]]) -> None:
    """What the times depend on: the nodes are processes on this machine, sharing its
    cores, and the last boots ran at once; what the first boot, which ran alone, took."""
    cores = len(os.sched_getaffinity(0))
    notes = [
        "sandbox: the container's root, disk and network; a node's first boot of the app "
        "also packs the image's and the snapshot's files into disk images there (once per "
        "node). other: the rest of the boot (after-restore, enter; a snapshot-created boot "
        "also imports the app, runs enter(snap=True) and dumps).",
        f"note: the {NODES} nodes are processes on this machine, sharing its {cores} "
        f"core{'s' if cores != 1 else ''}, and the last {NODES} boots ran at once: each was "
        "slower than it would be alone. `coldsnap bench fleet` times such boots one at a "
        "time.",
    ]
    first = next((b for b in sorted(boots, key=lambda b: b["created_at"])
                  if b.get("ok") and b["kind"] == "snapshot-created"), None)
    timings = (first or {}).get("timings") or {}
    if "import_s" in timings and "restore_s" in timings:
        enter = timings.get("enter_snap_s", 0.0)
        notes.append(
            f"The first boot ran alone: without a snapshot, a boot here imports the app and "
            f"loads the model ({_ms(timings['import_s'] + enter)}: import "
            f"{_ms(timings['import_s'])}, enter(snap=True) {_ms(enter)}); its restore from "
            f"the snapshot it had just made took {_ms(timings['restore_s'])}.")
    print()
    for i, note in enumerate(notes):  # "3472 ms" stays on one line
        text = textwrap.fill(note.replace(" ms", "\N{NO-BREAK SPACE}ms"), width=100,
                             initial_indent="  " if i > 1 else "", subsequent_indent="  ")
        print(text.replace("\N{NO-BREAK SPACE}", " "))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _remove_ray_sessions(before: set[Path]) -> None:
    """The session dirs (logs, sockets) that Ray made for the demo's cluster under
    /tmp/ray, and its ``session_latest`` link when it points at one of them."""
    ours = set(RAY_SESSIONS.glob("session_*")) - before
    latest = RAY_SESSIONS / "session_latest"
    if latest.is_symlink() and latest.resolve() in {p.resolve() for p in ours}:
        latest.unlink()
    for session in ours:
        if not session.is_symlink():
            shutil.rmtree(session, ignore_errors=True)


def _leave_files(root: Path, keep: bool) -> None:
    """Remove the demo's files, or say where they are and how big; a directory with
    something still mounted under it is kept (removing it would reach into the mount)."""
    size = _human(_size(root))
    mounted = _mounts_under(root)
    if keep or mounted:
        why = f" ({len(mounted)} mount(s) still under it: umount them first)" if mounted else ""
        print(f"==> the demo's files are in {root}: {size}{why}; "
              f"remove them with `rm -rf {root}`")
        return
    shutil.rmtree(root, ignore_errors=True)
    print(f"==> removed the demo's files ({root}, {size}); `--keep` keeps them")


def _size(root: Path) -> int:
    done = subprocess.run(["du", "-sbx", str(root)], capture_output=True, text=True)
    try:
        return int(done.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def _human(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


if __name__ == "__main__":
    sys.exit(main())
