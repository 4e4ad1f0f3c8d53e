"""Builds images into the content-addressed cache under ``settings.images``.

An image (``Image.to_dict()``) becomes a BuiltImage: the interpreter its
containers run, extra read-only lower layers for their root filesystem, and
environment variables. Builds are keyed by ``Image.hash`` and shared by every
app that uses the same image; ``with_build_output`` adds a class's ``@build``
output as one more layer, keyed by the base image, the app source and the tag.

Layout of one image::

    <images>/<key>/venv/           pip_install packages (only if the image has any)
    <images>/<key>/layers/NN-...   add_local_* copies and run_commands writes, one
                                   directory per group, at their paths under /
    <images>/<key>/build.log       what pip and the build containers printed
    <images>/<key>/image.json      written last: the build counts (see store.py)

Nothing a build runs writes to the host's filesystem: ``run_commands`` and
``@build`` run in containers whose writes are kept as a layer (``keep_upper``).

Example::

    builder = ImageBuilder(settings, engine)
    base = builder.build(image.spec)
    image = builder.with_build_output(base, source, "Embedder", ["build"])
    spec = ContainerSpec(argv=[image.python, "-m", "coldsnap._runtime"],
                         env=image.container_env({...}), layers=list(image.layers))
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.engine.base import ContainerSpec, Engine
from coldsnap.server.images.built import BuiltImage
from coldsnap.server.images.from_store import fetch_image
from coldsnap.server.images.oci_python import ImagePython
from coldsnap.server.images.on_base import BaseImageBuilder, StepPlan, run_function_plan
from coldsnap.server.images.runtime_layer import ensure_runtime_layer, runtime_argv
from coldsnap.server.images.step_objects import step_env, step_volumes
from coldsnap.server.images.steps import (
    BuildError,
    Progress,
    add_local,
    format_failure,
    make_venv,
    pip_install,
    run_commands_spec,
    run_container,
    strip_masks,
    venv_sees_this_host,
)
from coldsnap.server.images.store import ImageStore
from coldsnap.server.remote_store.images import open_remote_images
from coldsnap.settings import Settings
from coldsnap.wire.container import CODE_DIR_ENV, CONTAINER_ID_ENV
from coldsnap.wire.image_spec import Ignore, ImageSpec, layer_env

__all__ = ["BuildError", "BuiltImage", "ImageBuilder"]

# Ops that need a directory in the cache; an image of only from_host/env needs none.
_BUILT_OPS = {"pip_install", "run_commands", "add_local_file", "add_local_dir", "run_function"}
# Ops whose result only a sandboxed container can see (an overlay root).
_SANDBOX_OPS = {"run_commands", "add_local_file", "add_local_dir", "run_function"}
_DOCTOR = (
    "Run `coldsnap doctor` to see why CRIU is not usable on this host, fix it and "
    "restart the server (COLDSNAP_ENGINE=criu)."
)


class ImageBuilder:
    """Builds images and ``@build`` output, each at most once per key."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.store = ImageStore(settings.images)
        self.remote = open_remote_images(settings)  # images shared through the store
        if self.remote is not None:
            self.remote.upload_unfinished()
        self._on_base = BaseImageBuilder(settings, engine, self._cached_or_built,
                                         self._base_image)

    def build(self, spec: ImageSpec, progress: Progress = print) -> BuiltImage:
        """The built image of ``spec``, from the cache if there."""
        if spec.own_root:
            if not self.engine.isolated:
                raise BuildError(
                    f"Image.{spec.base['op']}() gives containers a root filesystem of their "
                    "own, which needs the criu engine: the 'none' engine runs every "
                    f"container on the host's own files. {_DOCTOR}")
            image = self._on_base.build(spec, progress)
            return dataclasses.replace(image, runtime=str(ensure_runtime_layer(
                self.settings.images)))
        key = spec.hash()
        layers = list(spec.layers)
        if not any(op in _BUILT_OPS for op in spec.ops()):  # the host as it is: instant
            host = BuiltImage(key, sys.executable, (), {})
            return dataclasses.replace(host, env=spec.env(host.container_env({})))
        op = next((op for op in spec.ops() if op in _SANDBOX_OPS), None)
        if op is not None and not self.engine.isolated:
            raise BuildError(
                f"Image.{op}() needs the criu engine: with the 'none' engine containers run "
                "on the host's own filesystem, which must never receive image files or "
                f"command output. {_DOCTOR}"
            )

        def make(workdir: Path) -> BuiltImage:
            built = self._build_layers(key, layers, workdir, progress)
            if spec.hash() != key:
                raise BuildError(
                    f"a local file of image {key[:12]} changed while it was being built, so "
                    "the build may mix old and new contents. Deploy again."
                )
            return built

        return self._cached_or_built(key, f"image {key[:12]}", progress, make)

    def with_build_output(
        self,
        base: BuiltImage,
        app_source: bytes,
        tag: str,
        methods: list[str],
        progress: Progress = print,
    ) -> BuiltImage:
        """``base`` plus what the ``@build`` methods of ``tag`` wrote, as its top layer.

        They run in a container of ``base`` (``python -m coldsnap._runtime.build``);
        whatever they write, at any path, is kept. Cached by (base image, source, tag).
        """
        if not methods:
            return base
        if not self.engine.isolated:
            raise BuildError(
                f"@build methods ({', '.join(methods)} of {tag}) need the criu engine: with "
                "the 'none' engine there is no sandbox, and their output must land in the "
                f"image, never on the host's filesystem. {_DOCTOR}"
            )
        source_hash = hashlib.sha256(app_source).hexdigest()
        key = hashlib.sha256(f"{base.hash}\0{source_hash}\0{tag}".encode()).hexdigest()
        label = f"@build output of {tag} ({', '.join(methods)})"

        def make(workdir: Path) -> BuiltImage:
            keep = workdir / "layers" / f"build-{uuid.uuid4().hex[:6]}"
            keep.parent.mkdir()
            # A shell sets the app path from COLDSNAP_CODE_DIR, which the engine picks.
            if base.base:  # the image's Python runs the runtime from its layer
                argv = runtime_argv("$0", "coldsnap._runtime.build", f"${CODE_DIR_ENV}/app.py",
                                    "$1")
                script = "exec " + " ".join(f'"{word}"' for word in argv)
            else:
                script = f'exec "$0" -m coldsnap._runtime.build "${CODE_DIR_ENV}/app.py" "$1"'
            spec = ContainerSpec(
                argv=["/bin/sh", "-c", script, base.python, tag],
                env=base.container_env(
                    {
                        "HOME": "/root",
                        "PYTHONUNBUFFERED": "1",
                        CONTAINER_ID_ENV: f"build-{key[:12]}",
                        "HF_HUB_OFFLINE": "1",
                        # Keeps .pyc files of host code out of the layer.
                        "PYTHONDONTWRITEBYTECODE": "1",
                    }
                ),
                files={"app.py": app_source},
                layers=[*([Path(base.runtime)] if base.runtime else []), *base.layers],
                base=Path(base.base) if base.base else None,
                keep_upper=keep,
            )
            log = workdir / "build.log"
            running = f"Running @build {', '.join(methods)} of {tag} in image {base.hash[:12]} ..."
            code, tail, _ = run_container(self.engine, spec, running, progress, log)
            if code != 0:
                raise BuildError(format_failure(
                    f"@build methods of {tag} failed ({_status(code)}).",
                    f"{base.python} -m coldsnap._runtime.build app.py {tag}", tail,
                    f"Fix the @build method (see its traceback above) and deploy again. "
                    f"Full log: {log}",
                ))  # fmt: skip
            self._finish_kept(keep, label)
            return dataclasses.replace(base, hash=key, layers=(keep, *base.layers))

        return self._cached_or_built(key, label, progress, make)

    # -- internals ---------------------------------------------------------------------

    def _base_image(self, layer: dict[str, Any], progress: Progress) -> BuiltImage:
        """The root filesystem a ``debian_slim`` or ``from_registry`` image starts from."""
        key = ImageSpec((layer,)).hash()
        if layer["op"] == "debian_slim":
            from coldsnap.server.images.debian import ensure_debian_base

            debian = ensure_debian_base(layer.get("python_version"), self.settings.base_dir,
                                        progress)
            return BuiltImage(f"{key}@{debian.key}", debian.python, (), {},
                              base=str(debian.rootfs))
        from coldsnap.server.images.oci import BadReference, pull
        from coldsnap.server.images.oci_python import image_python

        try:
            pulled = pull(layer["tag"], self.settings.registry_cache, progress)
        except BadReference as exc:
            raise BuildError(f"Image.from_registry({layer['tag']!r}): {exc}") from None
        add_python = layer.get("add_python")
        python = image_python(pulled.ref, pulled.python, add_python)
        # The digest, not the tag, names what the steps build on.
        image = BuiltImage(f"{key}@{pulled.digest}", python.path, (), dict(pulled.env),
                           base=str(pulled.rootfs),
                           workdir="" if pulled.workdir == "/" else pulled.workdir)
        return self._add_python(image, pulled.python, add_python, progress)

    def _add_python(self, image: BuiltImage, own: ImagePython | None, add_python: str | None,
                    progress: Progress) -> BuiltImage:
        """``image`` with add_python's layer right above its root (below every step)."""
        if add_python is None:
            return image
        from coldsnap.server.images.add_python import ensure_python_layer

        added = ensure_python_layer(add_python, self.settings.base_dir, progress)
        has = (f"The image has Python {own.version or '(of unknown version)'} at {own.path}; "
               if own is not None else "")
        progress(f"{has}functions run in the added Python {added.python_version} at "
                 f"{added.python}, as add_python={add_python!r} asks.")
        return dataclasses.replace(image, hash=f"{image.hash}@{added.key}",
                                   python=added.python, layers=(added.layer,),
                                   env=added.image_env(image.env))

    def _cached_or_built(
        self, key: str, label: str, progress: Progress, make: Callable[[Path], BuiltImage]
    ) -> BuiltImage:
        record = self._usable(key, progress)
        if record is None:
            waited = False

            def on_wait() -> None:
                nonlocal waited
                waited = True
                progress(f"Waiting for another build of {label} ...")

            with self.store.locked(key, on_wait):
                record = self._usable(key, None)
                if record is None:
                    fetched = self._fetched(key, label, progress)
                    if fetched is not None:
                        return fetched
                    return self._build_and_publish(key, label, progress, make)
            if waited:
                progress(f"Reusing {label}, built by the build we waited for.")
                return BuiltImage.from_record(record)
        progress(f"Using cached {label}.")
        return BuiltImage.from_record(record)

    def _fetched(self, key: str, label: str, progress: Progress) -> BuiltImage | None:
        """``key`` from the shared store, published here; None: build it on this host."""
        if fetch_image(self.remote, self.store, key, label, progress) is None:
            return None
        record = self._usable(key, progress)  # None: a venv of another Python environment
        return None if record is None else BuiltImage.from_record(record)

    def _usable(self, key: str, progress: Progress | None) -> dict[str, Any] | None:
        """The cached build of ``key``, unless it is missing or its venv sees another
        server's Python packages (another venv or checkout: another coldsnap too)."""
        record = self.store.load(key)
        if record is None:
            return None
        venv = Path(record.get("python", "")).parent.parent  # <key>/venv/bin/python
        if venv.name == "venv" and not venv_sees_this_host(venv):
            if progress is not None:
                progress(f"Image {key[:12]} was built for another Python environment than "
                         "this server's; building it again.")
            return None
        return record

    def _build_and_publish(
        self, key: str, label: str, progress: Progress, make: Callable[[Path], BuiltImage]
    ) -> BuiltImage:
        workdir = self.store.fresh_dir(key)  # wipes what an interrupted build left
        started = time.monotonic()
        progress(f"Building {label} ...")
        built = make(workdir)
        seconds = time.monotonic() - started
        record = {**built.to_record(), "built_s": round(seconds, 3), "created_at": time.time()}
        self.store.publish(key, record)
        progress(f"Built {label} in {seconds:.1f}s.")
        if self.remote is not None:
            self.remote.upload_later(key)
        return built

    def _build_layers(
        self,
        key: str,
        layers: list[dict[str, Any]],
        workdir: Path,
        progress: Progress,
    ) -> BuiltImage:
        # Layer directories carry a per-attempt suffix: the engine caches copies of
        # lower layers by path, so a rebuilt layer must never reuse an old path.
        attempt = uuid.uuid4().hex[:6]
        log = workdir / "build.log"
        (workdir / "layers").mkdir()
        python: Path | None = None
        done: list[Path] = []  # lowest first
        files_layer: Path | None = None  # the add_local_* layer still open for copies
        env_so_far: dict[str, str] = {}
        for layer in layers:
            op = layer["op"]
            if op == "env":  # a Dockerfile ENV's $PATH: the PATH its containers get
                so_far = BuiltImage(key, str(python or sys.executable), (), env_so_far)
                env_so_far.update(layer_env(layer, so_far.container_env({})))
            elif op == "pip_install":
                if python is None:
                    progress("Creating the image's virtual environment ...")
                    python = make_venv(workdir / "venv")
                pip_install(python, layer["packages"], log, progress)
            elif op in ("add_local_file", "add_local_dir"):
                if files_layer is None:
                    files_layer = workdir / "layers" / f"{len(done):02d}-files-{attempt}"
                    files_layer.mkdir()
                    done.append(files_layer)
                add_local(files_layer, Path(layer["local"]), layer["remote"], Ignore.of(layer))
                progress(f"Added {layer['local']} at {layer['remote']}")
            elif op in ("run_commands", "run_function"):
                files_layer = None  # what a container saw stays as it was
                keep = workdir / "layers" / f"{len(done):02d}-commands-{attempt}"
                current = BuiltImage(key, str(python or sys.executable), (), dict(env_so_far))
                self._run_step(current, layer, list(reversed(done)), keep, log, progress)
                done.append(keep)
        return BuiltImage(key, str(python or sys.executable), tuple(reversed(done)), env_so_far)

    def _run_step(self, image: BuiltImage, layer: dict[str, Any], layers: list[Path],
                  keep: Path, log: Path, progress: Progress) -> None:
        """A run_commands or run_function step of a from_host() image."""
        if layer["op"] == "run_function":
            plan = run_function_plan(layer, [image.python, "-m", "coldsnap._runtime.run_function"])
        else:
            plan = StepPlan(list(layer["commands"]), "run_commands",
                            "Fix the command in Image.run_commands(...).")
        env = {"HOME": "/root", **plan.env, **step_env(self.settings, layer)}
        spec = run_commands_spec(plan.commands, image.container_env(env), layers, keep)
        spec.files = plan.files
        spec.volumes = step_volumes(self.settings, layer)
        what = f"Running {plan.what} in a build container ..."
        code, tail, step = run_container(self.engine, spec, what, progress, log)
        if code != 0:
            raise BuildError(format_failure(
                f"{plan.what} failed ({_status(code)}) while building the image.",
                step or "; ".join(plan.commands), tail,
                f"{plan.fix} Then deploy again. Full log: {log}",
            ))  # fmt: skip
        self._finish_kept(keep, plan.what)

    def _finish_kept(self, keep: Path | None, label: str) -> None:
        if keep is None or not keep.is_dir():
            raise BuildError(
                f"saving what {label} wrote failed: the engine did not copy the container's "
                f"files to {keep}. Check free space under {self.settings.images} and deploy "
                "again."
            )
        strip_masks(keep, [self.settings.state_dir, self.settings.snapshots])


def _status(code: int | None) -> str:
    return "timed out" if code is None else f"exit status {code}"
