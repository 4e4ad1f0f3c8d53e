"""Deployed apps: their current versions, deploys, stops and drains.

Each app has one current version, in the database and in memory; calls go to
the pools of that version. A deploy describes the app, builds its images and
names the version; a new version retires the pools of the old one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from coldsnap.engine.gpu import host_gpus
from coldsnap.server.deploy_objects import prepare_objects, prepare_variant_volumes
from coldsnap.server.describe import check_app_name, describe_source, version_of
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.images.builder import ImageBuilder
from coldsnap.server.images.built import BuiltImage
from coldsnap.server.images.deploy import build_images
from coldsnap.server.logs import LogBook
from coldsnap.server.pool import Pool
from coldsnap.server.pools import Pools, wait_finished
from coldsnap.server.remote_store.sources import open_remote_sources
from coldsnap.server.secrets import SecretStore
from coldsnap.server.state import StateDB, StoredVersion
from coldsnap.server.variants import with_variant
from coldsnap.settings import Settings
from coldsnap.wire import web
from coldsnap.wire.description import AppDescription
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND
from coldsnap.wire.variant import Variant
from coldsnap.wire.web import WebEndpoint

DEPLOYED, STOPPED = "deployed", "stopped"
# How long idle containers of a deleted app get to run their exit hooks (as long as a
# container gets after a shutdown message, Worker.shutdown).
DELETE_GRACE_S = 5.0

logger = logging.getLogger(__name__)


class Deploys:
    """The apps this server has, and which version of each takes calls.

    ``_lock`` orders deploys, stops and drains of one server; it is taken before
    the pools' own lock, never after.
    """

    def __init__(self, settings: Settings, db: StateDB, logs: LogBook, pools: Pools,
                 builder: ImageBuilder) -> None:
        self.settings = settings
        self.db = db
        self.logs = logs
        self.pools = pools
        self.builder = builder
        self._current: dict[str, tuple[str, str]] = {}  # app -> (state, version)
        # The HTTP gateway's "http://HOST:PORT", once it listens (None: no gateway).
        self.web_base: str | None = None
        self._versions: dict[tuple[str, str], StoredVersion] = {}  # read from the db once
        self._lock = threading.RLock()
        self.sources = open_remote_sources(settings)  # deploys shared through the store
        self._from_store = threading.Lock()  # one deploy from the store at a time

    def start(self) -> None:
        """Pick up the apps of an earlier run; ephemeral ones died with their `run`."""
        for row in self.db.apps():
            if row["ephemeral"]:
                self.db.delete_app(row["name"])
                SecretStore(self.settings).drop_inline(row["name"])
                continue
            self._current[row["name"]] = (row["state"], row["version"])
            if row["state"] == DEPLOYED:
                self._warm(row["name"], row["version"])
                self._share_again(row["name"], row["version"], row["updated_at"])

    def _share_again(self, app: str, version: str, deployed_at: float) -> None:
        """Queue the source of the app's current version for the store, which may lack it
        (a stop or a crash before the store answered); ``deployed_at``: the apps row's
        updated_at, which only a deploy sets while the app stays deployed."""
        if self.sources is not None:
            stored = self._version(app, version)
            self.sources.resubmit(app, version, stored.filename, stored.source, deployed_at)

    def deploy(self, filename: str, source: bytes, name: str | None = None,
               ephemeral: bool = False, snapshots: bool = True, cwd: str | None = None,
               app_dir: str | None = None,
               report: Callable[[str], None] | None = None,
               share: bool = True) -> dict[str, Any]:
        """``cwd``: the client's working directory, for the app's relative paths;
        ``app_dir``: the app file's, whose modules the app imports go into its image;
        ``share``: put a new version's source into the shared store, if there is one."""
        description = describe_source(source, filename, self.settings.boot_timeout_s, cwd,
                                      app_dir)
        if not snapshots:  # e.g. the benchmark's baseline: same code, plain cold boots
            description = description.without_snapshots()
        if not self.builder.engine.isolated:  # its containers run on the host's files
            description = description.on_host_by_default()
        app = check_app_name(name or description.name)
        _check_labels(app, description)
        prepare_objects(self.settings, app, description)  # volumes and secrets
        version = version_of(source, description)
        progress: list[str] = []
        built: dict[str, BuiltImage] = {}
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
                self.pools.retire(app, keep_version=version)
                self._forget_versions(app, keep=version)
        if changed:
            self.logs.note(app, f"coldsnap: deployed {filename} as version {version[:12]}",
                           logging.INFO, logger)
            self._warm(app, version)
            if share and not ephemeral and self.sources is not None:
                self.sources.upload_later(app, version, filename, source)
        return {"app": app, "version": version, "changed": changed, "logs": progress,
                "functions": description.to_dict()["functions"],
                "entrypoints": list(description.entrypoints), "web_urls": self.web_urls(app),
                "notices": deploy_notices(description)}

    def stop(self, app: str, delete: bool = False) -> dict[str, Any]:
        """Stop an app: its containers leave once idle, running their exit hooks.

        With ``delete`` (an ephemeral `coldsnap run` app whose client is done or was
        interrupted) nobody waits for its calls: they are killed at once, and this
        returns once idle containers ran their exit hooks, with those lines in ``logs``
        (`coldsnap logs` can't reach a deleted app: the caller is the one to see them)."""
        with self._lock:
            self.require(app)
            pools = self.pools.of_app(app)
            if delete:
                self.db.delete_app(app)
                SecretStore(self.settings).drop_inline(app)
                del self._current[app]
                self._forget_versions(app)
            else:
                self.db.set_app_state(app, STOPPED)
                self._current[app] = (STOPPED, self._current[app][1])
            self.pools.retire(app)
        logs = self._end_containers(app, pools) if delete else []
        self.logs.note(app, "coldsnap: app stopped" + (" and deleted" if delete else ""),
                       logging.INFO, logger)
        return {"app": app, "stopped": True, "deleted": delete, "logs": logs}

    def _end_containers(self, app: str, pools: list[Pool]) -> list[str]:
        """End a deleted app's containers; returns the log lines they printed meanwhile."""
        book = self.logs.app(app)
        _, start = book.tail(0)
        self.pools.end(pools, f"app {app!r} was stopped and deleted", DELETE_GRACE_S,
                       kill_busy=True)
        return book.since(start, wait_s=0)[0]

    def drain(self, app: str, wait_s: float = 60.0) -> dict[str, Any]:
        """Stop the app's containers (once idle); it stays deployed and the next call
        cold-boots. Waits up to ``wait_s`` for them to exit, then boots the warm pool
        (min_containers) again, as a deploy does."""
        with self._lock:
            self.require(app)
            pools = self.pools.retire(app)
        drained = wait_finished(pools, wait_s, poll_s=0.02)
        with self._lock:  # a stop or a deploy meanwhile decides what stays warm
            state, version = self._current.get(app, (STOPPED, ""))
            if state == DEPLOYED:
                self._warm(app, version)
        return {"app": app, "drained": drained}

    def _warm(self, app: str, version: str) -> None:
        """Create the pools of functions with min_containers, so they boot now."""
        functions = self._version(app, version).description.functions
        for tag, fn in functions.items():
            if fn.options.min_containers:
                self._pool_for(app, version, tag)

    # finding what serves a call

    def pool(self, app: str, tag: str, variant: Variant | None = None) -> Pool:
        """The pool of ``tag`` (of a class's ``variant``) in the app's current version."""
        if app not in self._current:
            self._deploy_from_store(app)
        with self._lock:  # not a pool of a version a deploy is retiring right now
            state, version = self.state(app)
            if state != DEPLOYED:
                raise ApiError(NOT_FOUND, f"app {app!r} is stopped; deploy it again with "
                               "`coldsnap deploy FILE` to call it")
            return self._pool_for(app, version, tag, variant or Variant())

    def _deploy_from_store(self, app: str) -> None:
        """Deploy the version of ``app`` that another server sharing the store deployed
        last (docs/store.md, "App sources"); nothing when the store has none."""
        sources = self.sources
        if sources is None:
            return
        with self._from_store:
            stored = None if app in self._current else sources.latest(app)
            if stored is None:
                return
            self.logs.note(app, f"coldsnap: app {app!r} was deployed on another host: "
                           f"deploying its version {stored.version[:12]} "
                           f"({stored.filename}) from {sources.url}", logging.INFO, logger)
            self.deploy(stored.filename, stored.source, name=app, share=False)

    def _pool_for(self, app: str, version: str, tag: str,
                  variant: Variant | None = None) -> Pool:
        variant = variant or Variant()
        stored = self._version(app, version)
        functions = stored.description.functions
        if tag not in functions:
            raise ApiError(NOT_FOUND, f"app {app!r} has no function or class {tag!r}; it "
                           f"has: {', '.join(sorted(functions))}")

        def spec() -> FunctionSpec:
            return with_variant(FunctionSpec.from_description(
                app, version, tag, stored.description, stored.source,
                stored.built_images.get(tag)), variant)

        if not variant.is_default:  # a bad variant is refused here, before it has a pool
            prepare_variant_volumes(self.settings, spec().options)
        key = tag + (f"@{variant.key()}" if not variant.is_default else "")
        return self.pools.get((app, version, key), spec)

    def _version(self, app: str, version: str) -> StoredVersion:
        cached = self._versions.get((app, version))
        if cached is None:
            cached = self.db.version(app, version)
            if cached is None:
                raise self._no_app(app)
            self._versions[(app, version)] = cached
        return cached

    def _forget_versions(self, app: str, keep: str | None = None) -> None:
        """Drop cached versions of ``app`` but ``keep``: calls only reach the current one."""
        for key in [k for k in self._versions if k[0] == app and k[1] != keep]:
            del self._versions[key]

    def lookup(self, app: str, tag: str) -> dict[str, Any]:
        fn = self.pool(app, tag).fn
        return {"app": app, "tag": tag, "kind": fn.kind, "methods": list(fn.methods),
                "version": fn.version, "options": fn.options.to_dict(),
                "web_urls": self.web_urls(app, tag)}

    # web endpoints

    def web_endpoint(self, app: str, label: str) -> tuple[Pool, WebEndpoint]:
        """The pool serving the endpoint ``label`` of the app's current version, and the
        endpoint; NOT_FOUND names what the app has."""
        with self._lock:
            if app not in self._current:  # the gateway's 404: no list of the apps there are
                raise ApiError(NOT_FOUND, f"no app named {app!r} is deployed; deploy it with "
                               "`coldsnap deploy FILE`")
            state, version = self.state(app)
            if state != DEPLOYED:
                raise ApiError(NOT_FOUND, f"app {app!r} is stopped; deploy it again to serve "
                               f"its web endpoints")
            functions = self._version(app, version).description.functions
            for tag, fn in functions.items():
                for endpoint in fn.web:
                    if endpoint.label == label:
                        return self._pool_for(app, version, tag), endpoint
        labels = sorted(e.label for fn in functions.values() for e in fn.web)
        raise ApiError(NOT_FOUND, f"app {app!r} has no web endpoint labelled {label!r} "
                       f"(its endpoints: {', '.join(labels) or 'none'})")

    def web_urls(self, app: str, tag: str | None = None) -> dict[str, str]:
        """Endpoint name -> URL, of one function or class (``tag``) or of the whole app
        (``tag/name`` for a class's methods); empty without a gateway."""
        if self.web_base is None:
            return {}
        _, version = self.state(app)
        urls = {}
        for fn_tag, fn in self._version(app, version).description.functions.items():
            if tag is not None and fn_tag != tag:
                continue
            for endpoint in fn.web:
                name = endpoint.name if tag is not None or fn_tag == endpoint.name else \
                    f"{fn_tag}.{endpoint.name}"
                urls[name] = web.endpoint_url(self.web_base, app, endpoint.label)
        return urls

    def state(self, app: str) -> tuple[str, str]:
        """(``deployed`` or ``stopped``, current version); NOT_FOUND for an unknown app."""
        self.require(app)
        return self._current[app]

    def require(self, app: str) -> None:
        if app not in self._current:
            raise self._no_app(app)

    def _no_app(self, app: str) -> ApiError:
        deployed = sorted(name for name, (state, _) in self._current.items()
                          if state == DEPLOYED)
        stopped = sorted(name for name, (state, _) in self._current.items()
                         if state == STOPPED)
        known = ", ".join(deployed) or "none"
        if stopped:  # `apps ls` lists them too: say they are not running
            known += f"; stopped: {', '.join(stopped)}"
        return ApiError(NOT_FOUND, f"no app named {app!r} is deployed (deployed apps: "
                        f"{known}); deploy it with `coldsnap deploy FILE`")



def _check_labels(app: str, description: AppDescription) -> None:
    """Each web endpoint's label names one URL of the app: no two alike."""
    seen: dict[str, str] = {}
    for tag, fn in description.functions.items():
        for endpoint in fn.web:
            where = tag if tag == endpoint.name else f"{tag}.{endpoint.name}"
            if endpoint.label in seen:
                raise ApiError(BAD_REQUEST, f"app {app!r}: web endpoints {seen[endpoint.label]}"
                               f" and {where} both have the label {endpoint.label!r}; give "
                               "one of them another label= (each label is one URL)")
            seen[endpoint.label] = where


def deploy_notices(description: AppDescription) -> list[str]:
    """What a deploy says once: cloud-only options it ignores, gpu= on a host without one."""
    notices = description.notices()
    wanting = sorted(tag for tag, fn in description.functions.items() if fn.options.gpu)
    if wanting and not host_gpus():
        notices.append(f"gpu= (on {', '.join(wanting)}): this server's host has no GPU, so "
                       "they run on the CPU (CUDA is not available to them)")
    return notices
