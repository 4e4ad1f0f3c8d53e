"""The platform: the server's parts put together, and the path of a call into a pool."""

from __future__ import annotations

from typing import Any

from coldsnap.engine import Engine
from coldsnap.server.boot import Booter
from coldsnap.server.call_graph import CallGraph
from coldsnap.server.calls import Call
from coldsnap.server.deploys import Deploys
from coldsnap.server.errors import ApiError, Reply
from coldsnap.server.images.builder import ImageBuilder
from coldsnap.server.logs import LogBook
from coldsnap.server.metrics import ServerMetrics
from coldsnap.server.objects import Objects
from coldsnap.server.pool import SHUTTING_DOWN, Pool, PoolContext
from coldsnap.server.pools import Pools
from coldsnap.server.proxy_tokens import ProxyTokens
from coldsnap.server.reports import Reports
from coldsnap.server.sandboxes import Sandboxes
from coldsnap.server.schedules import Schedules
from coldsnap.server.snapshots import SnapshotAdmin
from coldsnap.server.spawned import SpawnedCalls
from coldsnap.server.state import StateDB
from coldsnap.server.worker import ContainerRequests
from coldsnap.settings import Settings
from coldsnap.wire.description import CLS
from coldsnap.wire.errors import BAD_REQUEST, NOT_FOUND, UNAVAILABLE
from coldsnap.wire.variant import Variant


class Platform:
    """One server's apps, pools, calls, logs and snapshots, each with its own owner.

    deploys: apps and their current versions (deploy, stop, drain, which pool serves).
    pools: every function version's pool of containers (``Pool``: the scheduler).
    reports: what `apps ls` and `apps stats` show.
    snapshots: `snapshots ls | inspect | rm | gc`.
    tokens: proxy-auth tokens of web endpoints (`token create | ls | rm`).
    calls: spawned calls, by id, in the state db until their results expire.
    logs: each app's log lines.

    The API (``api.py``) calls these parts; ``submit`` is the one path of a call.
    """

    def __init__(self, settings: Settings, engine: Engine, db: StateDB) -> None:
        self.settings = settings
        self.engine = engine
        self.db = db
        self.logs = LogBook()
        self.calls = SpawnedCalls(db, settings.call_results_path, settings.call_result_ttl_s)
        # Answers a container's API request (a function calling another); the daemon
        # points it at its Api. Until then containers are told no.
        self.container_requests: ContainerRequests = _no_container_requests
        self.metrics = ServerMetrics()  # /metrics (docs/metrics.md)
        booter = Booter(settings, engine, db, self.logs.note, self.metrics)
        self.remote = booter.remote  # the shared snapshot store, if any (docs/store.md)
        self.pool_context = PoolContext(booter, db, self.logs,
                                        lambda header, blob: self.container_requests(header,
                                                                                     blob))
        self.pools = Pools(self.pool_context)
        self.deploys = Deploys(settings, db, self.logs, self.pools,
                               ImageBuilder(settings, engine))
        self.reports = Reports(db, self.deploys, self.pools)
        self.snapshots = SnapshotAdmin(settings, engine, db, booter.keys)
        self.tokens = ProxyTokens(settings.proxy_tokens_path)  # web endpoints' proxy auth
        self.objects = Objects(db)  # Dicts and Queues
        self.schedules = Schedules(db, self.submit, self.logs)  # functions with schedule=
        self.call_graph = CallGraph()  # which input made each call
        self.metrics.watch(self.pools.all, lambda: engine.store)
        self.sandboxes = Sandboxes(settings, engine, self.deploys.builder, self.logs)

    def start(self) -> None:
        """Pick up the apps of an earlier run and boot their warm containers; the spawned
        calls it left unended were interrupted."""
        self.calls.recover()
        self.objects.start()
        self.deploys.start()
        self.schedules.start()

    def submit(self, app: str, tag: str, method: str | None, args: bytes,
               stream: bool = False, variant: Variant | None = None) -> tuple[Call, Pool]:
        """Queue a call to ``tag`` (a function, or a class's ``method``) of the app's
        current version; returns the call and the pool it waits in. ``stream``: a
        ``remote_gen`` call, whose items go to its caller as they come (never retried:
        the items it gave can't be taken back)."""
        pool = self.deploys.pool(app, tag, variant)
        fn = pool.fn
        if fn.kind == CLS:
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
        if (method or tag) in fn.web_names:
            name = f"{tag}.{method}" if method else tag
            raise ApiError(BAD_REQUEST, f"{app}/{name} is a web endpoint: it is invoked by "
                           "HTTP requests to its URL, not by .remote()/.map()/.spawn(); get "
                           "the URL with .get_web_url() (`coldsnap deploy` prints it)")
        call = Call(app=app, tag=tag, method=method, args=args,
                    timeout_s=fn.options.timeout or self.settings.call_timeout_s,
                    retries=0 if stream else fn.options.retry_policy.max_retries,
                    retry_policy=fn.options.retry_policy, stream=stream,
                    on_end=self._call_ended)
        try:
            pool.submit(call)
        except ApiError:
            pool = self.deploys.pool(app, tag, variant)  # a deploy retired it just now
            pool.submit(call)
        call.pool = pool  # FunctionCall.cancel() finds it there
        return call, pool

    def _call_ended(self, call: Call) -> None:
        outcome = call.outcome
        assert outcome is not None
        self.metrics.call_ended(call.app, call.tag, outcome.ok,
                                outcome.error.kind if outcome.error else None)
        self.call_graph.call_ended(call)

    def busy(self) -> bool:
        """True while any container boots or runs a call, or a call waits."""
        return self.pools.busy()

    def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop taking calls; give containers, booting ones too, ``grace_s`` to finish
        and leave (their exit hooks run); then kill what is left, before the engine
        closes."""
        self.schedules.stop()
        self.sandboxes.close()
        self.calls.stopping()
        self.pools.end(self.pools.all(), SHUTTING_DOWN, grace_s)
        if self.remote is not None:
            self.remote.close()  # an upload cut short: the next start does it again


def _no_container_requests(header: dict[str, Any], blob: bytes | None) -> Reply:
    return ApiError(UNAVAILABLE, "this server takes no requests from containers").to_header(), None
