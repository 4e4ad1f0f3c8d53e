"""One host of `coldsnap bench fleet`: a ``coldsnap serve`` of its own state dir, what
its server ran with, and the removal of that state dir once the server is gone (a run
leaves over a GB of snapshots, chunk cache and layers per host; its log stays)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from coldsnap.bench.coldboot import REPO, SENTENCE
from coldsnap.settings import Settings
from coldsnap.wire import ops

EMBEDDER = REPO / "examples" / "embedder.py"
# engine/criu_engine.py logs it at start when the server keeps memory warm (0 otherwise).
WARM_HELD = re.compile(rb"keeping (\d+) MB of memory warm for restores")


class Host:
    """A ``coldsnap serve`` of its own state dir (``root/state``), as one host of the fleet."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.root = root
        self.env = {**os.environ, "COLDSNAP_STATE_DIR": str(root / "state"),
                    "COLDSNAP_ENGINE": "criu", **env}
        self.settings = Settings.from_env(self.env)  # as its server reads them
        self.log_path = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Any = None

    def start(self, timeout: float = 60.0) -> Host:
        from coldsnap.client import Client

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "coldsnap.cli.main", "serve"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.conn = Client(self.settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host {self.name}'s server exited; see {self.log_path}")
            try:
                self.conn.ping()
                return self
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"host {self.name}'s server did not answer in {timeout:g} s")

    def stop(self) -> None:
        """Stop its server and wait until it is gone (a clean stop unmounts its run dir)."""
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove_state(self) -> list[str]:
        """Remove its state dir, keeping ``server.log``; what stayed mounted (so was kept:
        removing through a mount would reach another tree) is returned."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"host {self.name}'s server still runs: stop() it first")
        run_dir = self.settings.run_path  # this server's own, derived from its state dir
        # Only a killed server leaves mounts: lazily, as the engine itself unmounts them.
        for point in sorted(mounts_under(self.root, run_dir), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # empty once unmounted
        left = mounts_under(self.root)
        if not left:
            shutil.rmtree(self.root / "state", ignore_errors=True)
        return left

    def ran_with(self) -> dict[str, Any]:
        """The settings that shape its figures, as its server saw them, and its log."""
        try:
            held = WARM_HELD.findall(self.log_path.read_bytes())
        except OSError:
            held = []
        return {"warm_memory_mb": self.settings.warm_memory_mb,
                "warm_memory_held_mb": int(held[-1]) if held else 0,
                "server_log": str(self.log_path)}

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


def mounts_under(*dirs: Path) -> list[str]:
    """This machine's mount points at or below any of ``dirs``."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            # Field 5 is the mount point, with space, tab, newline, backslash as octal.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                           line.split()[4])
            if any(Path(point).is_relative_to(d) for d in dirs):
                found.append(point)
    return found
