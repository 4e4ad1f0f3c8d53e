"""Cold boots and the snapshot policy: plain boots, snapshot creation, restores.

``Booter.boot`` picks a strategy by name from ``BOOT_STRATEGIES``. For a
snapshot function the first cold boot of a key creates the snapshot and then
continues from it (restore after dump, which proves the snapshot works); boots
that arrive meanwhile wait for it; later boots restore. A failed dump or
restore never fails the boot: the key is marked failed (and not tried again)
and the container boots without a snapshot.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap.server.functions import APP_FILE, FunctionSpec
from coldsnap.server.state import StateDB
from coldsnap.server.worker import BootFailed, Worker, new_container_id
from coldsnap.settings import Settings
from coldsnap.snapshot import Container, ContainerSpec, Engine, SnapshotError, SnapshotMiss

# Wraps a fresh container in a Worker wired to its pool (logs, exit notice).
Attach = Callable[[Container, str], Worker]


@dataclasses.dataclass
class Boot:
    worker: Worker
    kind: str  # plain | snapshot-created | restored | fallback
    timings: dict[str, float]


class SnapshotKeys:
    """Which keys are being created right now, and which failed (in this server's life)."""

    def __init__(self, engine: Engine, db: StateDB) -> None:
        self._engine = engine
        self._db = db
        self._creating: set[str] = set()
        self._failed: dict[str, str] = {}
        self._cond = threading.Condition()

    def failure(self, key: str) -> str | None:
        return self._failed.get(key) or self._engine.failure(key)

    def mark_failed(self, key: str, reason: str) -> None:
        with self._cond:
            self._failed[key] = reason
        self._engine.mark_failed(key, reason)
        self._db.set_snapshot_error(key, reason)

    def claim(self, key: str, wait_s: float) -> str:
        """``restore``, ``fallback`` or ``create`` (then the caller must ``release``)."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while key in self._creating:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "fallback"  # the dump takes too long: don't wait forever
                self._cond.wait(remaining)
            if self.failure(key):
                return "fallback"
            if self._engine.lookup(key) is not None:
                return "restore"
            self._creating.add(key)
            return "create"

    def release(self, key: str) -> None:
        with self._cond:
            self._creating.discard(key)
            self._cond.notify_all()


class Booter:
    def __init__(self, settings: Settings, engine: Engine, db: StateDB,
                 log: Callable[[str, str], None]) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.log = log  # (app, line): the app's log
        self.keys = SnapshotKeys(engine, db)

    def boot(self, fn: FunctionSpec, attach: Attach) -> Boot:
        """Start a container for ``fn`` and return it once it said ``ready``."""
        strategy = "snapshot" if fn.options.enable_memory_snapshot else "plain"
        run = _BootRun(self, fn, attach)
        try:
            return BOOT_STRATEGIES[strategy](run)
        except BootFailed as exc:
            exc.logs = run.carried()
            raise


class _BootRun:
    """One boot of one function: the strategies and their steps."""

    def __init__(self, booter: Booter, fn: FunctionSpec, attach: Attach) -> None:
        self.settings = booter.settings
        self.engine = booter.engine
        self.db = booter.db
        self.keys = booter.keys
        self.log = booter.log
        self.fn = fn
        self._attach = attach
        # Log lines of containers this boot gave up on (dumped, failed): the caller
        # still sees them, ahead of the container that serves.
        self._carry: list[str] = []

    # strategies

    def plain(self) -> Boot:
        worker, timings = self._start(snapshot=False)
        return self._finish(worker, "plain", timings)

    def snapshot(self) -> Boot:
        if self.engine.name == "none":
            return self._handshake_without_dump("plain")
        key = self.fn.snapshot_key
        self.db.note_snapshot_key(key, self.fn.app, self.fn.version, self.fn.tag)
        claim = self.keys.claim(key, self.settings.dump_timeout_s + self.settings.boot_timeout_s)
        if claim == "restore":
            return self._restore(key)
        if claim == "fallback":
            return self._handshake_without_dump("fallback")
        try:
            return self._create(key)
        finally:
            self.keys.release(key)

    # steps

    def _spec(self, container_id: str, snapshot: bool) -> ContainerSpec:
        fn = self.fn
        return ContainerSpec(
            argv=fn.argv,
            env=fn.container_env(container_id, snapshot),
            files={APP_FILE: fn.source},
            layers=fn.layers,
            snapshot_phase=snapshot,
            memory_mb=self.settings.container_memory_mb,
            cpus=self.settings.container_cpus,
        )

    def _start(self, snapshot: bool) -> tuple[Worker, dict[str, float]]:
        container_id = new_container_id()
        container = self.engine.start(self._spec(container_id, snapshot))
        return self._adopt(container, container_id), dict(container.timings)

    def _adopt(self, container: Container, container_id: str) -> Worker:
        worker = self._attach(container, container_id)
        worker.pending_logs.extendleft(reversed(self._carry))
        self._carry = []
        return worker

    def carried(self) -> list[str]:
        return list(self._carry)

    def _retire(self, worker: Worker) -> None:
        """Kill a container this boot no longer needs, keeping its log lines."""
        worker.kill()
        self._carry.extend(worker.pending_logs)
        worker.pending_logs.clear()

    def _handshake_without_dump(self, kind: str) -> Boot:
        worker, timings = self._start(snapshot=True)
        header, _ = self._await_handshake(worker, timings)
        if header.get("type") == "snapshot_refused":
            worker.note(f"snapshot refused: {header.get('message', '')}")
        self._resume(worker, restored=False)
        return self._finish(worker, kind, timings)

    def _await_handshake(
        self, worker: Worker, timings: dict[str, float]
    ) -> tuple[dict[str, Any], bytes | None]:
        try:
            header, blob = worker.expect({"ready_to_snapshot", "snapshot_refused"},
                                         self.settings.boot_timeout_s)
        except BootFailed:
            self._retire(worker)
            raise
        timings.update(header.get("timings") or {})
        return header, blob

    def _create(self, key: str) -> Boot:
        worker, timings = self._start(snapshot=True)
        header, _ = self._await_handshake(worker, timings)
        if header.get("type") == "snapshot_refused":
            message = str(header.get("message", "the runtime refused the snapshot"))
            worker.note(f"snapshot refused, booting without one: {message}")
            self.keys.mark_failed(key, f"refused: {message}")
            self._resume(worker, restored=False)
            return self._finish(worker, "fallback", timings)
        worker.note(f"creating memory snapshot {key}")
        worker.pump.stop()  # the log pipe goes into the snapshot; read it empty first
        t0 = time.monotonic()
        try:
            info = self.engine.checkpoint(worker.container, key, labels={
                "app": self.fn.app, "function": self.fn.tag, "version": self.fn.version})
        except SnapshotError as exc:
            worker.note(f"memory snapshot failed, booting without one: {exc.reason}")
            self.keys.mark_failed(key, f"dump: {exc.reason}")
            self._retire(worker)
            return self._handshake_without_dump("fallback")
        timings["dump_s"] = info.dump_s or time.monotonic() - t0
        worker.note(
            f"memory snapshot created in {timings['dump_s'] * 1000:.0f} ms "
            f"({info.size_bytes / 1e6:.1f} MB); continuing from it"
        )
        self._retire(worker)  # gone after the dump: release its pipes and scratch
        restored = self._restore(key, kind="snapshot-created")
        restored.timings = {**timings, **restored.timings}
        return restored

    def _restore(self, key: str, kind: str = "restored") -> Boot:
        container_id = new_container_id()
        t0 = time.monotonic()
        try:
            container = self.engine.restore(key, self._spec(container_id, False))
        except (SnapshotError, SnapshotMiss) as exc:
            reason = exc.reason if isinstance(exc, SnapshotError) else f"snapshot missing: {exc}"
            self.keys.mark_failed(key, f"restore: {reason}")
            return self._fallback_after(f"restore from memory snapshot failed: {reason}")
        worker = self._adopt(container, container_id)
        timings = dict(container.timings)
        timings.setdefault("restore_s", time.monotonic() - t0)
        worker.note(f"restored from memory snapshot in {timings['restore_s'] * 1000:.0f} ms")
        try:
            self._resume(worker, restored=True)
            boot = self._finish(worker, kind, timings)
        except BootFailed as exc:
            if exc.blob is not None:  # user code in enter(snap=False) raised: not our fault
                raise
            self._retire(worker)
            self.keys.mark_failed(key, f"restored container died: {exc.message}")
            return self._fallback_after(f"the restored container died: {exc.message}")
        self.db.count_restore(key)
        return boot

    def _fallback_after(self, why: str) -> Boot:
        line = f"[{self.fn.tag}] coldsnap: {why}; booting without a snapshot"
        self.log(self.fn.app, line)
        self._carry.append(line)
        return self._handshake_without_dump("fallback")

    def _resume(self, worker: Worker, restored: bool) -> None:
        try:
            worker.channel.send({
                "type": "resume", "container_id": worker.id, "env": self.fn.resume_env(),
                "seed": secrets.randbits(63), "restored": restored,
            })
        except OSError as exc:
            message = worker.death_message(f"before resume ({exc})")
            self._retire(worker)
            raise BootFailed(message) from None

    def _finish(self, worker: Worker, kind: str, timings: dict[str, float]) -> Boot:
        try:
            header, _ = worker.expect({"ready"}, self.settings.boot_timeout_s)
        except BootFailed:
            self._retire(worker)
            raise
        timings.update(header.get("timings") or {})
        return Boot(worker, kind, timings)


BOOT_STRATEGIES: dict[str, Callable[[_BootRun], Boot]] = {
    "plain": _BootRun.plain,
    "snapshot": _BootRun.snapshot,
}
