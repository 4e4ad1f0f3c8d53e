"""Cold boots and the snapshot policy: plain boots, snapshot creation, restores.

``Booter.boot`` picks a strategy by name from ``BOOT_STRATEGIES``. For a
snapshot function the first cold boot of a key creates the snapshot and then
continues from it (restore after dump, which proves the snapshot works); boots
that arrive meanwhile wait for it; later boots restore. A failed dump or
restore never fails the boot: the container boots without a snapshot (a plain
boot, outside the snapshot phase's sandbox). The key is marked failed and not
tried again until `coldsnap snapshots rm KEY`; a transient restore failure (a
timeout, a setup error) only pauses restores of the key for a while, and a
transient dump failure (CRIU killed, a timeout, a full store) only delays the
key's next dump, by a backoff that doubles per consecutive failure (dump_retry.py).

A snapshot whose files changed after it was made (``SnapshotDamaged``) is
quarantined without marking its key failed, so the next cold boot makes a new
one; only a snapshot damaged right after its dump marks the key (no dump loop).

A container's startup (its imports and enter hooks) is bounded by the function's
startup_timeout=, else timeout= (startup_limit.py); one that runs past it fails the boot.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from coldsnap.engine import Container, ContainerSpec, Engine, SnapshotError, SnapshotMiss
from coldsnap.engine.base import SnapshotDamaged, new_container_id
from coldsnap.engine.gpu import GpuUnavailable
from coldsnap.server.boot_objects import BootObjects
from coldsnap.server.dump_retry import duration
from coldsnap.server.fleet.fleet import SnapshotOutOfReach
from coldsnap.server.fleet.shared import fetch_for, shared_store
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.metrics import ServerMetrics
from coldsnap.server.remote_store import FetchFailed
from coldsnap.server.remote_store.layout import LayoutSecret, fixed_layout, hash_seed_env
from coldsnap.server.snapshot_checks import BY_RESTORE, SnapshotChecks
from coldsnap.server.snapshot_history import FAILED, QUARANTINED, SnapshotHistory
from coldsnap.server.snapshot_keys import TRANSIENT_RETRY_S, Claim, SnapshotKeys
from coldsnap.server.startup_limit import StartupClock, StartupTimedOut
from coldsnap.server.state import StateDB
from coldsnap.server.worker import BootFailed, Worker
from coldsnap.settings import Settings
from coldsnap.wire import control
from coldsnap.wire.snapshot_warnings import parse_warnings

# Wraps a fresh container in a Worker wired to its pool (logs, exit notice).
Attach = Callable[[Container], Worker]
# (app, line, level, logger): a note of the server's for the app's log and its own.
Note = Callable[[str, str, int, logging.Logger], None]
RETRY_HINT = "`coldsnap snapshots rm {key}` clears it so the next cold boot tries again"

logger = logging.getLogger(__name__)


class BootKind(enum.StrEnum):
    """How a container came up; stored with each boot and shown by `apps stats`."""

    PLAIN = "plain"  # no snapshot wanted (or the engine takes none)
    SNAPSHOT_CREATED = "snapshot-created"  # made the snapshot, then restored from it
    RESTORED = "restored"
    FALLBACK = "fallback"  # a snapshot was wanted but could not be used
    FAILED = "failed"  # no container came up (the boot record carries the error)


@dataclasses.dataclass
class Boot:
    worker: Worker
    kind: BootKind
    timings: dict[str, float]


class Booter:
    """Boots containers for any function (``boot``, by a strategy of ``BOOT_STRATEGIES``)
    and owns the snapshot keys being made, failed or paused (``keys``)."""

    def __init__(self, settings: Settings, engine: Engine, db: StateDB, note: Note,
                 metrics: ServerMetrics | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.note = note  # LogBook.note: the app's log and the server's
        self.metrics = metrics or ServerMetrics()
        self.history = SnapshotHistory(db)  # what `coldsnap snapshots why` reads
        self.checks = SnapshotChecks(db)  # each restore's digest check: `snapshots ls` shows it
        self.keys = SnapshotKeys(engine, dump_retry_s=settings.dump_retry_s,
                                 dump_retry_max_s=settings.dump_retry_max_s,
                                 on_failed=lambda key, why: self.history.ended(key, FAILED, why))
        # The shared store (docs/store.md), through the fleet's hosts (fleet/shared.py).
        self.remote = shared_store(settings, engine)
        self.fixed_layout = fixed_layout(settings)
        self.layout_secret = LayoutSecret(
            settings.state_dir, self.remote.layout_secret if self.remote else None
        ) if self.fixed_layout else None

    def boot(self, fn: FunctionSpec, attach: Attach,
             stopping: Callable[[], bool] = lambda: False) -> Boot:
        """Start a container for ``fn`` and return it once it said ``ready``.

        ``stopping()`` turns True at shutdown: a dump or restore that fails then
        (its container killed) says nothing about the snapshot.
        """
        strategy = "snapshot" if fn.options.enable_memory_snapshot else "plain"
        run = _BootRun(self, fn, attach, stopping)
        t0 = time.monotonic()
        try:
            try:
                fn.gpu_devices()  # a gpu= this host can't meet fails the boot, saying why
            except GpuUnavailable as exc:
                raise BootFailed(f"{fn.label}: {exc}") from None
            boot = BOOT_STRATEGIES[strategy](run)
        except BootFailed as exc:
            exc.logs = run.carried()
            self._count_failure(run)
            raise
        except Exception:
            self._count_failure(run)
            raise
        self.metrics.booted(fn.app, fn.tag, boot.kind, boot.timings, time.monotonic() - t0)
        return boot

    def _count_failure(self, run: _BootRun) -> None:
        if not run.stopping():  # cut short by the shutdown: not the boot's failure
            self.metrics.boot_failed(run.fn.app, run.fn.tag, run.kind)


class _BootRun:
    """One boot of one function: the strategies and their steps."""

    def __init__(self, booter: Booter, fn: FunctionSpec, attach: Attach,
                 stopping: Callable[[], bool]) -> None:
        self.settings = booter.settings
        self.engine = booter.engine
        self.db = booter.db
        self.keys = booter.keys
        self.remote = booter.remote
        self.fixed_layout = booter.fixed_layout
        self.layout_secret = booter.layout_secret
        self.note = booter.note
        self.history = booter.history
        self.checks = booter.checks
        self.fn = fn
        self._attach = attach
        self._stopping = stopping
        self.kind = BootKind.PLAIN  # what the boot is trying now (a failure's kind)
        # Log lines of containers this boot gave up on (dumped, failed): the caller
        # still sees them, ahead of the container that serves.
        self._carry: list[str] = []
        self._objects = BootObjects(self.settings, fn)  # its volumes and secrets
        # startup_timeout=, else timeout=: the user's imports and enter hooks
        self.startup = StartupClock(fn, self.settings.boot_timeout_s)

    # strategies

    def stopping(self) -> bool:
        return self._stopping()

    def plain(self) -> Boot:
        worker, timings = self._start(snapshot=False)
        return self._finish(worker, BootKind.PLAIN, timings)

    def snapshot(self) -> Boot:
        if self.engine.store is None:  # an engine that takes no snapshots
            return self.plain()  # the runtime runs the snap=True hooks, then the others
        key = self.fn.snapshot_key()  # once per boot: it looks at the host's packages
        self.db.note_snapshot_key(key, self.fn.app, self.fn.version, self.fn.tag)
        claim = self.keys.claim(key, self.settings.snapshot_wait_s)
        if claim is Claim.RESTORE:
            return self._restore(key)
        if claim is Claim.FALLBACK:
            return self._without_snapshot()
        if claim is Claim.WAITED_OUT:
            return self._fallback_after(
                f"another boot is still making memory snapshot {key} after waiting "
                f"{self.settings.snapshot_wait_s:g} s (COLDSNAP_SNAPSHOT_WAIT_S)", logging.INFO)
        try:
            return self._fetch(key) or self._create(key)
        finally:
            self.keys.release(key)

    # steps

    def _spec(self, container_id: str, snapshot: bool) -> ContainerSpec:
        fn = self.fn
        env = fn.container_env(container_id, snapshot, self._objects.secrets())
        fixed = snapshot and self.fixed_layout  # versions share pages (remote_store/layout.py)
        return ContainerSpec(
            argv=fn.argv,
            env={**hash_seed_env(fn.app, fn.tag, self.layout_secret.value()), **env}
            if fixed and self.layout_secret is not None else env,
            fixed_layout=fixed,
            volumes=self._objects.volumes(),
            files={fn.app_file: fn.source},
            layers=fn.layers,
            base=fn.base,
            cwd=fn.workdir,
            snapshot_phase=snapshot,
            gpu_snapshot=fn.options.gpu_snapshot,
            block_network=fn.options.block_network,
            # 0: the engine's default (COLDSNAP_CONTAINER_*)
            memory_mb=fn.options.memory_limit_mb or 0,
            cpus=fn.options.cpu_limit or 0.0,
            disk_mb=fn.options.ephemeral_disk or 0,
            container_id=container_id,
        )

    def _start(self, snapshot: bool) -> tuple[Worker, dict[str, float]]:
        if snapshot:
            self.kind = BootKind.SNAPSHOT_CREATED
        container_id = new_container_id()
        container = self.engine.start(self._spec(container_id, snapshot))
        self.startup.restart()  # it runs the imports and hooks anew
        return self._adopt(container), dict(container.timings)

    def _adopt(self, container: Container) -> Worker:
        worker = self._attach(container)
        worker.pending_logs.extendleft(reversed(self._carry))
        self._carry = []
        return worker

    def carried(self) -> list[str]:
        return list(self._carry)

    def _unless_stopping(self) -> None:
        if self._stopping():
            raise BootFailed("the boot was cut short: the coldsnap server is shutting down")

    def _retire(self, worker: Worker) -> None:
        """Kill a container this boot no longer needs, keeping its log lines."""
        worker.kill()
        self._carry.extend(worker.pending_logs)
        worker.pending_logs.clear()

    def _without_snapshot(self) -> Boot:
        """A fallback boot: plain, so the container has the network and GPUs that the
        snapshot phase's sandbox lacks (the runtime runs every enter hook in order)."""
        self.kind = BootKind.FALLBACK
        worker, timings = self._start(snapshot=False)
        return self._finish(worker, BootKind.FALLBACK, timings)

    def _await_handshake(
        self, worker: Worker, timings: dict[str, float]
    ) -> tuple[dict[str, Any], bytes | None]:
        try:
            header, blob = self.startup.spend(lambda left: worker.expect(
                {control.READY_TO_SNAPSHOT, control.SNAPSHOT_REFUSED}, left))
        except BootFailed:
            self._retire(worker)
            raise
        timings.update(header.get(control.TIMINGS) or {})
        return header, blob

    def _create(self, key: str) -> Boot:
        worker, timings = self._start(snapshot=True)
        header, _ = self._await_handshake(worker, timings)
        if header.get(control.TYPE) == control.SNAPSHOT_REFUSED:
            message = str(header.get(control.MESSAGE, "the runtime refused the snapshot"))
            worker.note(f"snapshot refused, booting without one: {message}",
                        level=logging.WARNING, logger=logger)
            self.keys.mark_failed(key, f"refused: {message}")
            self._retire(worker)  # it lives in the snapshot phase's sandbox: start afresh
            return self._without_snapshot()
        worker.pump.stop()  # the log pipe goes into the snapshot; read it empty first
        worker.note(f"creating memory snapshot {key}", logger=logger)  # after the hooks' lines
        warnings = parse_warnings(header.get(control.WARNINGS))
        for warning in warnings:
            worker.note(f"snapshot warning: {warning.message}", level=logging.WARNING,
                        logger=logger)
        t0 = time.monotonic()
        try:
            info = self.engine.checkpoint(worker.container, key, labels={
                "app": self.fn.app, "function": self.fn.tag, "version": self.fn.version,
                **self._objects.snapshot_labels()}, warnings=[w.to_dict() for w in warnings])
        except SnapshotError as exc:
            return self._dump_failed(worker, key, exc)
        self.keys.dumps.clear(key)
        self.history.created(self.fn, key, info.extra.get("host") or {})
        timings["dump_s"] = info.dump_s or time.monotonic() - t0
        worker.note(
            f"memory snapshot created in {timings['dump_s'] * 1000:.0f} ms "
            f"({info.size_bytes / 1e6:.1f} MB); continuing from it", logger=logger
        )
        self._retire(worker)  # gone after the dump: release its pipes and scratch
        restored = self._restore(key, kind=BootKind.SNAPSHOT_CREATED)
        restored.timings = {**timings, **restored.timings}
        if self.remote is not None and restored.kind is BootKind.SNAPSHOT_CREATED:
            self.remote.upload_later(info)  # it restored: worth sharing
        return restored

    def _fetch(self, key: str) -> Boot | None:
        """Restore ``key`` from the shared store when it has it; None: make it here."""
        if self.remote is None:
            return None
        try:
            fetched = fetch_for(self.remote, key, self.fn)  # on a fleet: where it will restore
        except FetchFailed as exc:
            self.note(self.fn.app, f"[{self.fn.tag}] coldsnap: fetching memory snapshot {key} "
                      f"from {self.remote.url} failed: {exc}; making one on this host",
                      logging.WARNING, logger)
            return None
        if fetched is None:
            return None
        self.note(self.fn.app, f"[{self.fn.tag}] coldsnap: fetched memory snapshot {key} from "
                  f"{self.remote.url}: {fetched.describe()}", logging.INFO, logger)
        info = self.engine.lookup(key)
        if info is not None:  # `snapshots why` compares it with this host's last one
            self.history.created(self.fn, key, info.extra.get("host") or {})
        boot = self._restore(key)
        boot.timings = {**fetched.timings(), **boot.timings}
        return boot

    def _dump_failed(self, worker: Worker, key: str, exc: SnapshotError) -> Boot:
        """Boot without a snapshot. A transient failure only holds the key's next dump
        off for a while; any other marks the key failed for good."""
        if exc.transient:
            line = (f"memory snapshot failed (transient: the next try is in "
                    f"{duration(self.keys.dumps.backoff(key))}), booting without one: "
                    f"{exc.reason}")
        else:
            line = (f"memory snapshot failed, booting without one: {exc.reason}; "
                    + RETRY_HINT.format(key=key))
        worker.note(line, level=logging.WARNING, logger=logger)
        self._retire(worker)
        self._unless_stopping()  # killed by the shutdown: not the snapshot's fault
        if exc.transient:
            self.keys.dumps.failed(key, f"dump: {exc.reason}")
        else:
            self.keys.mark_failed(key, f"dump: {exc.reason}")
        return self._without_snapshot()

    def _restore(self, key: str, kind: BootKind = BootKind.RESTORED) -> Boot:
        self.kind = kind
        container_id = new_container_id()
        spec = self._spec(container_id, False)  # a missing volume or secret: not the engine's
        t0 = time.monotonic()
        try:
            container = self.engine.restore(key, spec)
        except SnapshotError as exc:
            self._unless_stopping()
            if exc.transient:  # the snapshot is probably fine
                self.keys.mark_transient(key, f"restore: {exc.reason}")
                return self._fallback_after(
                    f"restore from memory snapshot failed (transient, restores resume in "
                    f"{TRANSIENT_RETRY_S / 60:g} min): {exc.reason}")
            self.keys.mark_failed(key, f"restore: {exc.reason}")
            return self._fallback_after(f"restore from memory snapshot failed: {exc.reason}; "
                                        + RETRY_HINT.format(key=key))
        except SnapshotDamaged as exc:
            return self._after_damage(key, kind, exc)
        except SnapshotOutOfReach as exc:  # on a fleet's hosts that can't take it now
            return self._fallback_after(str(exc))
        except SnapshotMiss as exc:  # gone since lookup (rm, gc): a later boot makes it anew
            return self._fallback_after(f"memory snapshot {key} is gone ({exc})")
        except Exception as exc:  # an engine bug must not fail the boot
            self._unless_stopping()
            logger.exception("the %s engine failed restoring %s", self.engine.name, key)
            reason = f"the {self.engine.name} engine failed: {type(exc).__name__}: {exc}"
            self.keys.mark_transient(key, f"restore: {reason}")
            return self._fallback_after(f"restore from memory snapshot failed: {reason}")
        worker = self._adopt(container)
        timings = dict(container.timings)
        timings.setdefault("restore_s", time.monotonic() - t0)
        worker.note(f"restored from memory snapshot in {timings['restore_s'] * 1000:.0f} ms",
                    logger=logger)
        try:
            self._resume(worker, restored=True, key=key)
            boot = self._finish(worker, kind, timings)
        except BootFailed as exc:
            # User code in enter(snap=False) raised, or took too long: not the snapshot's fault.
            if exc.blob is not None or isinstance(exc, StartupTimedOut):
                raise
            self._retire(worker)
            self._unless_stopping()
            self.keys.mark_failed(key, f"restored container died: {exc.message}")
            return self._fallback_after(f"the restored container died: {exc.message}; "
                                        + RETRY_HINT.format(key=key))
        self.keys.restored(key)
        self.db.count_restore(key)
        if "verify_s" in timings:  # the engine checked the digests
            self.checks.record(key, True, BY_RESTORE)
        return boot

    def _after_damage(self, key: str, kind: BootKind, exc: SnapshotDamaged) -> Boot:
        self.history.ended(key, QUARANTINED, str(exc))
        self.checks.record(key, False, BY_RESTORE, str(exc))
        if kind is BootKind.SNAPSHOT_CREATED:  # damaged as soon as written: don't loop
            self.keys.mark_failed(key, f"restore: {exc}")
            return self._fallback_after(f"{exc}, right after it was made; "
                                        + RETRY_HINT.format(key=key))
        return self._fallback_after(f"{exc}; the next cold boot makes a new snapshot")

    def _fallback_after(self, why: str, level: int = logging.WARNING) -> Boot:
        line = f"[{self.fn.tag}] coldsnap: {why}; booting without a snapshot"
        self.note(self.fn.app, line, level, logger)
        self._carry.append(line)
        return self._without_snapshot()

    def _resume(self, worker: Worker, restored: bool, key: str) -> None:
        # The snapshot's secret keys (to unset those gone since): its metadata is read
        # again only for a function that has secrets.
        info = self.engine.lookup(key) if restored and self.fn.options.secrets else None
        labels = info.extra.get("labels") or {} if info is not None else {}
        try:
            worker.channel.send(control.Resume(
                container_id=worker.id, env=self._objects.resume_env(labels),
                seed=secrets.randbits(63), restored=restored).to_header())
        except OSError as exc:
            message = worker.death_message("before resume", exc)
            self._retire(worker)
            raise BootFailed(message) from None

    def _finish(self, worker: Worker, kind: BootKind, timings: dict[str, float]) -> Boot:
        try:
            header, _ = self.startup.spend(lambda left: worker.expect({control.READY}, left))
        except BootFailed:
            self._retire(worker)
            raise
        timings.update(header.get(control.TIMINGS) or {})
        worker.web_ports = control.web_ports(header)
        return Boot(worker, kind, timings)


BOOT_STRATEGIES: dict[str, Callable[[_BootRun], Boot]] = {
    "plain": _BootRun.plain,
    "snapshot": _BootRun.snapshot,
}
