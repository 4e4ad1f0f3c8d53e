"""What the server knows about one function of one deployed version."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from coldsnap.engine.gpu import cuda_visible_devices
from coldsnap.server.environment import environment_fingerprint
from coldsnap.server.images.built import BuiltImage
from coldsnap.server.images.runtime_layer import runtime_argv
from coldsnap.wire.container import BootConfig
from coldsnap.wire.description import AppDescription, FunctionKind
from coldsnap.wire.image_spec import ImageSpec
from coldsnap.wire.options import FunctionOptions

# Hidden during the snapshot phase, given back by ``resume`` (docs/protocol.md).
SNAPSHOT_PHASE_ENV = {"CUDA_VISIBLE_DEVICES": "", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
# What a container inherits from the server's environment; nothing else (an
# auto-started server has its first client's environment: credentials and all).
# The image's env and the function's ``env=`` add to it.
HOST_ENV = frozenset({
    "PATH", "HOME", "LANG", "TZ", "TERM", "CUDA_VISIBLE_DEVICES",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
})
# Of those, what a root of its own (debian_slim, from_registry) does not get: the
# host's layout means nothing there. The image's PATH and HOME=/root instead.
HOST_LAYOUT_ENV = frozenset({"PATH", "HOME", "TERM"})
OWN_ROOT_HOME = "/root"  # HOME and the working directory, as on Modal


def host_env(names: frozenset[str] = HOST_ENV, locale: bool = True) -> dict[str, str]:
    """The server's values of ``names`` (and ``LC_*`` with ``locale``) that are set."""
    return {k: v for k, v in os.environ.items()
            if k in names or (locale and k.startswith("LC_"))}


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    app: str
    version: str
    tag: str
    kind: FunctionKind
    methods: tuple[str, ...]
    options: FunctionOptions
    source: bytes
    image_spec: ImageSpec
    built: BuiltImage | None = None  # None: the host's interpreter, no extra layers
    module: str = "app"  # the app file's module name, as the deploying client had it
    # A class's variant (server/variants.py): its parameter values and the variant's key.
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    variant: str = ""
    # The variant as calls name it (Variant.to_dict()): a fleet's restarted control
    # plane makes the variant's pool again from it (fleet/takeover.py).
    variant_data: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Names of its web endpoints (the function's tag, or a class's methods): served by
    # HTTP requests, never by calls.
    web_names: frozenset[str] = frozenset()

    @classmethod
    def from_description(cls, app: str, version: str, tag: str, description: AppDescription,
                         source: bytes, built: BuiltImage | None) -> FunctionSpec:
        fn = description.functions[tag]
        return cls(app=app, version=version, tag=tag, kind=fn.kind, methods=fn.methods,
                   options=fn.options, source=source,
                   image_spec=fn.image_spec or description.image_spec,
                   built=built, module=description.module,
                   web_names=frozenset(endpoint.name for endpoint in fn.web))

    @property
    def app_file(self) -> str:
        """The app's file name in the container's code dir."""
        return f"{self.module}.py"

    def snapshot_key(self) -> str:
        """Version, the interpreter and packages the container sees now, and tag; the
        engine files it under this host's key. A package upgraded on the host since the
        last snapshot gives a new key: the old snapshot holds the old modules in memory."""
        if self.base is not None:  # the image and the runtime are content-addressed
            assert self.built is not None
            environment = hashlib.sha256(
                f"{self.built.hash}\0{self.built.runtime}".encode()).hexdigest()[:8]
        else:
            environment = environment_fingerprint(self.argv[0])
        variant = f"-{self.variant}" if self.variant else ""  # a snapshot per variant
        return f"{self.version[:32]}-{environment}-{self.tag}{variant}"

    @property
    def label(self) -> str:
        return f"{self.app}/{self.tag}"

    def user_env(self, secrets: dict[str, str] | None = None) -> dict[str, str]:
        """What the container's user code sees outside the snapshot phase: the host's
        allowed variables, then the image's, then the function's ``env=``, then its
        ``secrets`` (values read at this boot: server/secrets.py)."""
        env = host_env()
        if self.base is not None:
            env = {k: v for k, v in env.items() if k not in HOST_LAYOUT_ENV}
            env["HOME"] = OWN_ROOT_HOME
        if self.built is not None:
            env = self.built.container_env(env)
        else:
            env.update(self.image_spec.env())
        env.update(self.options.env)
        env.update(secrets or {})
        devices = self.gpu_devices()
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        return env

    def gpu_devices(self) -> str | None:
        """``CUDA_VISIBLE_DEVICES`` for ``gpu=`` (engine/gpu.py); None: the server's own.
        GpuUnavailable when this host has GPUs but none that ``gpu=`` accepts."""
        return cuda_visible_devices(self.options.gpu_requests,
                                    os.environ.get("CUDA_VISIBLE_DEVICES"))

    def container_env(self, container_id: str, snapshot: bool,
                      secrets: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a fresh container (the engine adds its fd and dir vars)."""
        env = self.user_env(secrets)
        env.update(self.boot_config(container_id, snapshot).to_env(), PYTHONUNBUFFERED="1")
        if snapshot and not self.options.gpu_snapshot:  # a GPU snapshot keeps the GPU visible
            env.update(SNAPSHOT_PHASE_ENV)
        return env

    def boot_config(self, container_id: str, snapshot: bool) -> BootConfig:
        return BootConfig(app_file=self.app_file, tag=self.tag,
                          app_name=self.app,  # deployed as (coldsnap run, deploy --name)
                          snapshot=snapshot, gpu_snapshot=self.options.gpu_snapshot,
                          block_network=self.options.block_network,
                          container_id=container_id, params=self.params)

    def resume_env(self, secrets: dict[str, str] | None = None) -> dict[str, str | None]:
        """The real values of what the snapshot phase hid (None: unset), and the
        secrets' values of now: a value changed since the snapshot is the new one."""
        current: dict[str, str | None] = {**(secrets or {})}
        if self.options.gpu_snapshot:
            return current
        env = self.user_env(secrets)
        return {**current, **{name: env.get(name) for name in SNAPSHOT_PHASE_ENV}}

    @property
    def argv(self) -> list[str]:
        if self.built is not None and self.built.base:
            return runtime_argv(self.built.python, "coldsnap._runtime")
        python = self.built.python if self.built is not None else sys.executable
        return [python, "-m", "coldsnap._runtime"]

    @property
    def layers(self) -> list[Path]:
        """The lower layers above the base, highest first (the runtime's on top)."""
        if self.built is None:
            return []
        runtime = [Path(self.built.runtime)] if self.built.runtime else []
        return [*runtime, *self.built.layers]

    @property
    def base(self) -> Path | None:
        """The image's root filesystem; None: the host's."""
        return Path(self.built.base) if self.built is not None and self.built.base else None

    @property
    def workdir(self) -> str:
        """The containers' working directory: the image's ``workdir``; else /root on a
        root of its own (as on Modal), the code dir on the host's."""
        if self.built is None:
            return self.image_spec.workdir()
        return self.built.workdir or (OWN_ROOT_HOME if self.built.base else "")
