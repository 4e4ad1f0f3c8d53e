"""The platform: deployed apps, their function pools, calls, logs and snapshots."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from coldsnap.engine import Engine
from coldsnap.server.boot import Booter
from coldsnap.server.calls import Call, CallTable
from coldsnap.server.describe import check_app_name, describe_source, version_of
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.images.builder import BuiltImage, ImageBuilder
from coldsnap.server.images.deploy import build_images
from coldsnap.server.logs import LogBook
from coldsnap.server.pool import SHUTTING_DOWN, ContainerRequests, Pool, PoolContext
from coldsnap.server.snapshots import SnapshotAdmin
from coldsnap.server.state import StateDB, StoredVersion
from coldsnap.settings import Settings
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND, UNAVAILABLE

DEPLOYED, STOPPED = "deployed", "stopped"
# How long idle containers of a deleted app get to run their exit hooks (as long as a
# container gets after a shutdown message, Worker.shutdown).
DELETE_GRACE_S = 5.0


class Platform:
    def __init__(self, settings: Settings, engine: Engine, db: StateDB) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.logs = LogBook()
        self.calls = CallTable()
        # Answers a container's API request (a function calling another); the daemon
        # points it at its Api. Until then containers are told no.
        self.container_requests: ContainerRequests = _no_container_requests
        self._ctx = PoolContext(Booter(settings, engine, db, self.logs.write), db, self.logs,
                                lambda header, blob: self.container_requests(header, blob))
        self._pools: dict[tuple[str, str, str], Pool] = {}
        self._retired: list[Pool] = []  # draining: no new calls, finishing old ones
        self._current: dict[str, tuple[str, str]] = {}  # app -> (state, version)
        self._versions: dict[tuple[str, str], StoredVersion] = {}  # read from the db once
        self._lock = threading.RLock()
        self.builder = ImageBuilder(settings, engine)
        self.snapshots = SnapshotAdmin(settings, engine, db, self._ctx.booter.keys)

    def start(self) -> None:
        """Pick up the apps of an earlier run; ephemeral ones died with their `run`."""
        for row in self.db.apps():
            if row["ephemeral"]:
                self.db.delete_app(row["name"])
                continue
            self._current[row["name"]] = (row["state"], row["version"])
            if row["state"] == DEPLOYED:
                self._warm(row["name"], row["version"])

    # deploys

    def deploy(self, filename: str, source: bytes, name: str | None = None,
               ephemeral: bool = False, snapshots: bool = True, cwd: str | None = None,
               app_dir: str | None = None,
               report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """``cwd``: the client's working directory, for the app's relative paths;
        ``app_dir``: the app file's, whose modules the app imports go into its image."""
        description = describe_source(source, filename, self.settings.boot_timeout_s, cwd,
                                      app_dir)
        if not snapshots:  # e.g. the benchmark's baseline: same code, plain cold boots
            description = description.without_snapshots()
        app = check_app_name(name or description.name)
        version = version_of(source, description)
        progress: list[str] = []
        built: dict[str, dict[str, Any]] = {}
        if self._current.get(app) != (DEPLOYED, version):
            def build_progress(line: str) -> None:
                progress.append(line)
                self.logs.write(app, f"[build] {line}")
                if report is not None:
                    report(line)

            known = self.db.version(app, version)
            built = known.built_images if known else build_images(
                self.builder, description, source, filename, build_progress)
        with self._lock:
            changed = self._current.get(app) != (DEPLOYED, version)
            if changed:
                self.db.put_version(
                    StoredVersion(app, version, filename, source, description, built))
                self.db.set_app(app, version, DEPLOYED, ephemeral)
                self._current[app] = (DEPLOYED, version)
                self._drain(app, keep_version=version)
        if changed:
            self.logs.write(app, f"coldsnap: deployed {filename} as version {version[:12]}")
            self._warm(app, version)
        return {"app": app, "version": version, "changed": changed, "logs": progress,
                "functions": description.to_dict()["functions"],
                "entrypoints": list(description.entrypoints)}

    def stop_app(self, app: str, delete: bool = False) -> dict[str, Any]:
        """Stop an app: its containers leave once idle, running their exit hooks.

        With ``delete`` (an ephemeral `coldsnap run` app whose client is done or was
        interrupted) nobody waits for its calls: they are killed at once, and this
        returns once idle containers ran their exit hooks, with those lines in ``logs``
        (`coldsnap logs` can't reach a deleted app: the caller is the one to see them)."""
        with self._lock:
            if app not in self._current:
                raise self._no_app(app)
            pools = [pool for pool in self._all_pools() if pool.fn.app == app]
            if delete:
                self.db.delete_app(app)
                del self._current[app]
            else:
                self.db.set_app_state(app, STOPPED)
                self._current[app] = (STOPPED, self._current[app][1])
            self._drain(app, keep_version=None)
        logs = self._end_containers(app, pools) if delete else []
        self.logs.write(app, "coldsnap: app stopped" + (" and deleted" if delete else ""))
        return {"app": app, "stopped": True, "deleted": delete, "logs": logs}

    def _end_containers(self, app: str, pools: list[Pool]) -> list[str]:
        """Kill the containers running a call or booting now (no exit hooks); give idle
        ones DELETE_GRACE_S to run their exit hooks, then kill what is left. Returns
        the log lines they printed meanwhile."""
        book = self.logs.app(app)
        _, start = book.tail(0)
        for pool in pools:
            pool.stop(f"app {app!r} was stopped and deleted")
            pool.kill_busy()
        self._wait_finished(pools, DELETE_GRACE_S)
        for pool in pools:
            pool.kill()
        self._wait_finished(pools, 5.0)  # their threads notice and unwind
        return book.since(start, wait_s=0)[0]

    def drain_containers(self, app: str, wait_s: float = 60.0) -> dict[str, Any]:
        """Stop the app's containers (once idle); it stays deployed and the next call
        cold-boots. Waits up to ``wait_s`` for them to exit, then boots the warm pool
        (min_containers) again, as a deploy does."""
        with self._lock:
            if app not in self._current:
                raise self._no_app(app)
            pools = [pool for key, pool in self._pools.items() if key[0] == app]
            self._drain(app, keep_version=None)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not all(p.finished for p in pools):
            time.sleep(0.02)
        drained = all(p.finished for p in pools)
        with self._lock:  # a stop or a deploy meanwhile decides what stays warm
            state, version = self._current.get(app, (STOPPED, ""))
            if state == DEPLOYED:
                self._warm(app, version)
        return {"app": app, "drained": drained}

    def _drain(self, app: str, keep_version: str | None) -> None:
        for key, pool in list(self._pools.items()):
            if key[0] == app and key[1] != keep_version:
                pool.drain()
                self._retired.append(self._pools.pop(key))

    def _warm(self, app: str, version: str) -> None:
        """Create the pools of functions with min_containers, so they boot now."""
        functions = self._version(app, version).description.functions
        for tag, fn in functions.items():
            if fn.options.min_containers:
                self._pool_for(app, version, tag)

    # calls

    def submit(self, app: str, tag: str, method: str | None, args: bytes) -> tuple[Call, Pool]:
        pool = self.pool(app, tag)
        fn = pool.fn
        if fn.kind == "cls":
            if method is None:  # Function.from_name on a class's name
                example = fn.methods[0] if fn.methods else "method"
                raise ApiError(BAD_REQUEST, f"{fn.label} is a class: use coldsnap.Cls."
                               f"from_name({app!r}, {tag!r})().{example}.remote(...)")
            if method not in fn.methods:
                raise ApiError(NOT_FOUND, f"class {fn.label} has no method {method!r}; its "
                               f"methods are: {', '.join(fn.methods) or '(none)'}")
        elif method is not None:  # Cls.from_name on a function's name
            raise ApiError(BAD_REQUEST, f"{fn.label} is a function, not a class: use "
                           f"coldsnap.Function.from_name({app!r}, {tag!r}).remote(...)")
        call = Call(app=app, tag=tag, method=method, args=args,
                    timeout_s=fn.options.timeout or self.settings.call_timeout_s,
                    retries=fn.options.retries)
        try:
            pool.submit(call)
        except ApiError:
            pool = self.pool(app, tag)  # a deploy retired that pool just now: use the new one
            pool.submit(call)
        return call, pool

    def pool(self, app: str, tag: str) -> Pool:
        state_version = self._current.get(app)
        if state_version is None:
            raise self._no_app(app)
        state, version = state_version
        if state != DEPLOYED:
            raise ApiError(NOT_FOUND, f"app {app!r} is stopped; deploy it again with "
                           "`coldsnap deploy FILE` to call it")
        return self._pool_for(app, version, tag)

    def _pool_for(self, app: str, version: str, tag: str) -> Pool:
        key = (app, version, tag)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                return pool
            stored = self._version(app, version)
            functions = stored.description.functions
            if tag not in functions:
                raise ApiError(NOT_FOUND, f"app {app!r} has no function or class {tag!r}; it "
                               f"has: {', '.join(sorted(functions))}")
            record = stored.built_images.get(tag)
            fn = FunctionSpec.from_description(
                app, version, tag, stored.description, stored.source,
                BuiltImage.from_record(record) if record else None)
            self._forget_finished()
            pool = self._pools[key] = Pool(fn, self._ctx)
            return pool

    def _version(self, app: str, version: str) -> StoredVersion:
        cached = self._versions.get((app, version))
        if cached is None:
            cached = self.db.version(app, version)
            if cached is None:
                raise self._no_app(app)
            self._versions[(app, version)] = cached
        return cached

    def _forget_finished(self) -> None:
        self._retired = [pool for pool in self._retired if not pool.finished]

    def _all_pools(self) -> list[Pool]:
        with self._lock:
            self._forget_finished()
            return [*self._pools.values(), *self._retired]

    def require_app(self, app: str) -> None:
        if app not in self._current:
            raise self._no_app(app)

    def _no_app(self, app: str) -> ApiError:
        known = ", ".join(sorted(self._current)) or "none"
        return ApiError(NOT_FOUND, f"no app named {app!r} is deployed (deployed apps: "
                        f"{known}); deploy it with `coldsnap deploy FILE`")

    def lookup(self, app: str, tag: str) -> dict[str, Any]:
        fn = self.pool(app, tag).fn
        return {"app": app, "tag": tag, "kind": fn.kind, "methods": list(fn.methods),
                "version": fn.version, "options": fn.options.to_dict()}

    # reporting

    def apps(self) -> list[dict[str, Any]]:
        rows = []
        pools = self._all_pools()
        for row in self.db.apps():
            stats = [p.stats() for p in pools if p.fn.app == row["name"]]
            rows.append({
                "name": row["name"], "version": row["version"], "state": row["state"],
                "ephemeral": bool(row["ephemeral"]), "updated_at": row["updated_at"],
                "containers": sum(len(s["containers"]) for s in stats),
                "calls": sum(s["calls_ok"] + s["calls_error"] + s["calls_failed"]
                             for s in stats),
            })
        return rows

    def stats(self, app: str) -> dict[str, Any]:
        if app not in self._current:
            raise self._no_app(app)
        pools = [p for p in self._all_pools() if p.fn.app == app]
        state, version = self._current[app]
        return {"app": app, "state": state, "version": version,
                "functions": [p.stats() for p in pools], "boots": self.db.boots(app)}

    def busy(self) -> bool:
        """True while any container boots or runs a call, or a call waits."""
        return any(s["queued"] or s["booting"] or any(c["state"] == "busy"
                                                      for c in s["containers"])
                   for s in (pool.stats() for pool in self._all_pools()))

    def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop taking calls; give containers, booting ones too, ``grace_s`` to finish
        and leave (their exit hooks run); then kill what is left, before the engine
        closes."""
        pools = self._all_pools()
        for pool in pools:
            pool.stop(SHUTTING_DOWN)
        self._wait_finished(pools, grace_s)
        for pool in pools:  # stragglers: busy or booting past the grace period
            pool.kill()
        self._wait_finished(pools, 10.0)  # their threads notice and unwind

    @staticmethod
    def _wait_finished(pools: list[Pool], wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not all(p.finished for p in pools):
            time.sleep(0.05)


def _no_container_requests(header: dict[str, Any], blob: bytes | None
                           ) -> tuple[dict[str, Any], bytes | None]:
    return ApiError(UNAVAILABLE, "this server takes no requests from containers").to_header(), None
