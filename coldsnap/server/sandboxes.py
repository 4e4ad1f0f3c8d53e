"""Sandboxes: containers of their own kind, started on request and driven by exec.

A sandbox is no function's pool: ``Sandboxes.create`` builds its image the way a
deploy does (``ImageBuilder``), starts one container through the engine with the
same isolation, limits, volumes and secrets a function's container gets, and runs
``coldsnap._runtime.sandbox_agent`` in it; ``SandboxContainer`` (sandbox_process.py)
talks to that agent. Ended sandboxes stay listed for ``KEEP_ENDED_S`` so their
output and return code can still be read.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from coldsnap.engine import ContainerSpec, Engine, EngineUnavailable
from coldsnap.engine.gpu import GpuUnavailable
from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.images.builder import BuildError, ImageBuilder
from coldsnap.server.images.runtime_layer import runtime_argv
from coldsnap.server.logs import LogBook
from coldsnap.server.sandbox_process import SandboxContainer
from coldsnap.server.secrets import SecretStore
from coldsnap.server.volumes import VolumeStore
from coldsnap.settings import Settings
from coldsnap.wire import sandbox as wire
from coldsnap.wire.description import FUNCTION
from coldsnap.wire.errors import BAD_REQUEST, DEPLOY_FAILED, NOT_FOUND, InvalidError
from coldsnap.wire.image_spec import ImageSpec
from coldsnap.wire.options import FunctionOptions

AGENT_MODULE = "coldsnap._runtime.sandbox_agent"
KEEP_ENDED_S = 3600.0

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SandboxRequest:
    """What ``Sandbox.create()`` asked for (server/sandbox_api.py reads it)."""

    app: str
    entrypoint: list[str]
    image: ImageSpec
    options: dict[str, Any]  # FunctionOptions' form: env, cpu, memory, gpu, volumes, ...
    secrets: list[dict[str, Any]]  # in order: {"name": N} or {"values": {...}}
    timeout_s: float
    idle_timeout_s: float | None
    workdir: str | None
    name: str | None
    tags: dict[str, str]


@dataclasses.dataclass
class Sandbox:
    app: str
    name: str | None
    tags: dict[str, str]
    running: SandboxContainer
    workdir: str

    @property
    def id(self) -> str:
        return self.running.id

    def info(self) -> dict[str, Any]:
        run = self.running
        return {"sandbox_id": run.id, "app": self.app, "name": self.name, "tags": self.tags,
                "created_at": run.created_at, "returncode": run.returncode,
                "ended_by": run.ended_by, "container_id": run.container.id}


class Sandboxes:
    """The server's sandboxes, by id."""

    def __init__(self, settings: Settings, engine: Engine, builder: ImageBuilder,
                 logs: LogBook) -> None:
        self.settings = settings
        self.engine = engine
        self.builder = builder
        self.logs = logs
        self._by_id: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self._closed = False

    def create(self, req: SandboxRequest,
               report: Callable[[str], None] | None = None) -> Sandbox:
        """Start a sandbox; ``report`` gets its image build's lines as they come."""
        self._forget_ended()
        if req.name is not None and self.by_name(req.app, req.name, missing_ok=True):
            raise ApiError(BAD_REQUEST, f"app {req.app!r} already has a running sandbox named "
                           f"{req.name!r}: terminate it first, or pick another name")
        sandbox_id = "sb-" + uuid.uuid4().hex[:12]
        fn = self._function_spec(req, sandbox_id, report)
        try:
            spec = self._container_spec(fn, req, fn.user_env(self._secrets(req)))
            container = self.engine.start(spec)
        except (EngineUnavailable, GpuUnavailable) as exc:
            raise ApiError(BAD_REQUEST, f"Sandbox.create(): {exc}") from None
        running = SandboxContainer(sandbox_id, container, req.timeout_s, req.idle_timeout_s,
                                   lambda line: self.logs.write(req.app, line))
        sandbox = Sandbox(req.app, req.name, dict(req.tags), running, spec.cwd)
        with self._lock:
            self._by_id[sandbox_id] = sandbox
            closed = self._closed
        if closed:  # the server began stopping while this one started
            running.terminate()
        elif req.entrypoint:
            running.start(wire.ENTRYPOINT, req.entrypoint, None, {}, None)
        self.logs.note(req.app, f"coldsnap: sandbox {sandbox_id} started in container "
                       f"{container.id}", logging.INFO, logger)
        return sandbox

    def _function_spec(self, req: SandboxRequest, sandbox_id: str,
                       report: Callable[[str], None] | None) -> FunctionSpec:
        try:
            options = FunctionOptions.create("Sandbox.create()", **req.options)
        except InvalidError as exc:
            raise ApiError(BAD_REQUEST, str(exc)) from None
        try:
            built = self.builder.build(req.image, lambda line: self._progress(
                req.app, line, report))
        except BuildError as exc:
            raise ApiError(DEPLOY_FAILED, f"building the sandbox's image failed:\n{exc}"
                           ) from None
        return FunctionSpec(app=req.app, version="sandbox", tag=sandbox_id, kind=FUNCTION,
                            methods=(), options=options, source=b"", image_spec=req.image,
                            built=built)

    def _progress(self, app: str, line: str, report: Callable[[str], None] | None) -> None:
        self.logs.write(app, f"[build] {line}")
        if report is not None:
            report(line)

    def _secrets(self, req: SandboxRequest) -> dict[str, str]:
        env: dict[str, str] = {}
        store = SecretStore(self.settings)
        for secret in req.secrets:
            env.update(store.values(secret["name"]) if "name" in secret
                       else secret.get("values") or {})
        return env

    def _container_spec(self, fn: FunctionSpec, req: SandboxRequest,
                        env: dict[str, str]) -> ContainerSpec:
        built = fn.built
        assert built is not None
        argv = (runtime_argv(built.python, AGENT_MODULE) if built.base
                else [built.python or sys.executable, "-m", AGENT_MODULE])
        store = VolumeStore(self.settings)
        volumes = {path: store.path(ref.name) for path, ref in fn.options.volumes.items()}
        return ContainerSpec(
            argv=argv, env={**env, "PYTHONUNBUFFERED": "1"},
            volumes=volumes, layers=fn.layers, base=fn.base,
            cwd=req.workdir or fn.workdir or "/", block_network=fn.options.block_network,
            memory_mb=fn.options.memory_limit_mb or 0, cpus=fn.options.cpu_limit or 0.0,
            disk_mb=fn.options.ephemeral_disk or 0)

    def get(self, sandbox_id: str) -> Sandbox:
        sandbox = self._by_id.get(sandbox_id)
        if sandbox is None:
            raise ApiError(NOT_FOUND, f"no sandbox {sandbox_id!r} on this server (ended ones "
                           f"are kept {KEEP_ENDED_S:g} s); `coldsnap sandbox ls` lists them")
        return sandbox

    def by_name(self, app: str, name: str, missing_ok: bool = False) -> Sandbox | None:
        for sandbox in list(self._by_id.values()):
            if (sandbox.app, sandbox.name) == (app, name) and sandbox.running.returncode is None:
                return sandbox
        if missing_ok:
            return None
        raise ApiError(NOT_FOUND, f"app {app!r} has no running sandbox named {name!r}")

    def list(self, app: str | None, tags: dict[str, str] | None) -> list[Sandbox]:
        return [s for s in list(self._by_id.values())
                if (app is None or s.app == app)
                and all(s.tags.get(k) == v for k, v in (tags or {}).items())]

    def _forget_ended(self) -> None:
        now = time.time()
        with self._lock:
            for sandbox_id, sandbox in list(self._by_id.items()):
                if (sandbox.running.returncode is not None
                        and now - sandbox.running.created_at > KEEP_ENDED_S):
                    del self._by_id[sandbox_id]

    def end_app(self, app: str) -> None:
        """Kill the app's sandboxes (the app was stopped)."""
        for sandbox in self.list(app, None):
            if sandbox.running.returncode is None:
                sandbox.running.terminate()

    def close(self) -> None:
        """Kill every sandbox (the server is stopping)."""
        with self._lock:
            self._closed = True
            sandboxes = list(self._by_id.values())
        for sandbox in sandboxes:
            sandbox.running.terminate()
