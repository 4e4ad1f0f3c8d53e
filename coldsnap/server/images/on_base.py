"""Images with a root filesystem of their own: a base, then one cached layer per step.

``debian_slim()`` and ``from_registry(tag)`` give a root filesystem (``BuiltImage.base``,
shared by every image on it); each later step adds a layer, built in a *build
container* whose root is the image so far, with network, and kept when it works.
Step ``i`` is cached under the hash of the image's first ``i + 1`` layers, so
changing the last step of an image rebuilds only that step. ``env`` and
``workdir`` steps build nothing; a Dockerfile ENV's ``$NAME`` is expanded here,
against the environment the image's containers get so far.

What each step runs (``/bin/sh -c``, output shown as it comes)::

    pip_install     PYTHON -m pip install OPTIONS PACKAGES   (the host's pip config)
    uv_pip_install  uv pip install --system --python PYTHON OPTIONS PACKAGES
    apt_install     apt-get update; apt-get install -y --no-install-recommends PACKAGES
    run_commands    each command, in order
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shlex
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coldsnap.engine.base import ContainerSpec, Engine
from coldsnap.server.images.built import BuiltImage
from coldsnap.server.images.host_tools import pip_binds, pip_env, uv_binary, uv_env
from coldsnap.server.images.runtime_layer import ensure_runtime_layer, runtime_argv
from coldsnap.server.images.step_objects import step_env, step_volumes
from coldsnap.server.images.steps import (
    RUN_SCRIPT,
    BuildError,
    Progress,
    add_local,
    format_failure,
    run_container,
)
from coldsnap.settings import Settings
from coldsnap.wire.container import CODE_DIR_ENV, CONTAINER_ID_ENV
from coldsnap.wire.image_spec import Ignore, ImageSpec, layer_env

# (key, label, progress, make) -> the built image, from the cache or made now.
Cached = Callable[[str, str, Progress, Callable[[Path], BuiltImage]], BuiltImage]
BUILD_ENV = {"HOME": "/root", "DEBIAN_FRONTEND": "noninteractive", "PYTHONUNBUFFERED": "1",
             "PIP_ROOT_USER_ACTION": "ignore", "PIP_BREAK_SYSTEM_PACKAGES": "1",
             "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off", "PIP_NO_CACHE_DIR": "1",
             "UV_NO_CACHE": "1",
             "PYTHONDONTWRITEBYTECODE": "1"}
APT = ("apt-get update -q && apt-get install -y -q --no-install-recommends {packages} "
       "&& apt-get clean && rm -rf /var/lib/apt/lists/*")


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """What a build container runs for one step, and what to say if it fails."""

    commands: list[str]
    what: str
    fix: str
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    binds: tuple[str, ...] = ()
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # into the code dir
    # The step's secrets' values and volumes (step_objects.py): never in its hash.
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    volumes: dict[str, Path] = dataclasses.field(default_factory=dict)


ARGS_FILE = "run-function-args.pkl"


def run_function_plan(layer: dict[str, Any], argv: list[str]) -> StepPlan:
    """``Image.run_function``'s step: ``argv`` (the image's way to run a runtime module,
    with ``$0``... free) runs ``coldsnap._runtime.run_function`` on the function's file."""
    filename = layer["filename"]
    args = [f"${CODE_DIR_ENV}/{filename}", layer["name"], f"${CODE_DIR_ENV}/{ARGS_FILE}"]
    command = " ".join([*map(shlex.quote, argv), *(f'"{arg}"' for arg in args)])
    return StepPlan(
        [command], f"run_function {layer['name']}",
        f"Fix {layer['name']}() in {filename} (its traceback is above).",
        env={CONTAINER_ID_ENV: f"build-{layer['name']}"},
        files={filename: base64.b64decode(layer["source"]),
               ARGS_FILE: base64.b64decode(layer["args"])})


class BaseImageBuilder:
    """Builds images whose first layer is ``debian_slim`` or ``from_registry``."""

    def __init__(self, settings: Settings, engine: Engine, cached: Cached,
                 base: Callable[[dict[str, Any], Progress], BuiltImage]) -> None:
        self.settings = settings
        self.engine = engine
        self._cached = cached
        self._base = base

    def build(self, spec: ImageSpec, progress: Progress) -> BuiltImage:
        image = self._base(spec.base, progress)
        for count in range(2, len(spec.layers) + 1):
            image = self._step(image, spec.prefix(count), progress)
        return image

    def _step(self, image: BuiltImage, prefix: ImageSpec, progress: Progress) -> BuiltImage:
        layer = prefix.layers[-1]
        # The steps so far and what they stand on (a registry image's digest, not its tag).
        key = hashlib.sha256(f"{image.hash}\0{prefix.hash()}".encode()).hexdigest()
        op = layer["op"]
        if op == "env":  # a Dockerfile ENV's $PATH: the PATH containers of the image get
            env = {**image.env, **layer_env(layer, image.container_env({}))}
            return dataclasses.replace(image, hash=key, env=env)
        if op == "workdir":
            return dataclasses.replace(image, hash=key, workdir=layer["path"])
        label = f"step {len(prefix.layers) - 1} ({op}) of image {key[:12]}"
        if op in ("add_local_file", "add_local_dir"):
            return self._cached(key, label, progress,
                                lambda workdir: self._add_local(image, key, layer, workdir))
        plan = self._plan(image, layer)

        def build(workdir: Path) -> BuiltImage:  # secrets are read only when it runs
            objects = dataclasses.replace(plan, secrets=step_env(self.settings, layer),
                                          volumes=step_volumes(self.settings, layer))
            return self._run(image, key, objects, workdir, progress)

        return self._cached(key, label, progress, build)

    def _add_local(self, image: BuiltImage, key: str, layer: dict[str, Any],
                   workdir: Path) -> BuiltImage:
        files = workdir / f"files-{uuid.uuid4().hex[:6]}"
        files.mkdir()
        add_local(files, Path(layer["local"]), layer["remote"], Ignore.of(layer))
        return dataclasses.replace(image, hash=key, layers=(files, *image.layers))

    def _plan(self, image: BuiltImage, layer: dict[str, Any]) -> StepPlan:
        op = layer["op"]
        words = shlex.join([*layer.get("options", []), *layer.get("packages", [])])
        if op == "pip_install":
            return StepPlan(
                [f"{shlex.quote(image.python)} -m pip install {words}"], "pip install",
                "Check the names and versions in Image.pip_install(...): they must exist "
                "on the index this host's pip uses (`pip config list`).",
                env=pip_env(), binds=pip_binds())
        if op == "uv_pip_install":
            uv = uv_binary()
            if uv is None:
                raise BuildError("Image.uv_pip_install() needs uv on the server: "
                                 "`pip install uv` into the server's environment.")
            return StepPlan(
                [f"{uv} pip install --system --break-system-packages --python "
                 f"{shlex.quote(image.python)} {words}"], "uv pip install",
                "Check the names and versions in Image.uv_pip_install(...).",
                env=uv_env(), binds=(uv, *pip_binds()))
        if op == "apt_install":
            return StepPlan([APT.format(packages=words)], "apt-get install",
                            "Check the package names in Image.apt_install(...) against the "
                            "image's Debian release (`apt-cache search NAME`).")
        if op == "run_function":
            return run_function_plan(layer, runtime_argv(image.python,
                                                         "coldsnap._runtime.run_function"))
        return StepPlan(list(layer["commands"]), "run_commands",
                        "Fix the command in Image.run_commands(...).")

    def _run(self, image: BuiltImage, key: str, plan: StepPlan, workdir: Path,
             progress: Progress) -> BuiltImage:
        keep = workdir / f"layer-{uuid.uuid4().hex[:6]}"
        spec = ContainerSpec(
            argv=["/bin/sh", "-c", RUN_SCRIPT, "coldsnap-build", *plan.commands],
            env=image.container_env({**BUILD_ENV, **plan.env, **plan.secrets}),
            volumes=plan.volumes,
            # The runtime's layer: its init is every container's pid 1 (run_function
            # runs its Python package too).
            layers=[ensure_runtime_layer(self.settings.images), *image.layers],
            base=Path(image.base),
            binds=plan.binds, files=plan.files, keep_upper=keep, cwd=image.workdir or "/",
        )
        log = workdir / "build.log"
        what = f"Running {plan.what} in a build container of image {key[:12]} ..."
        code, tail, step = run_container(self.engine, spec, what, progress, log)
        if code != 0:
            status = "timed out" if code is None else f"exit status {code}"
            raise BuildError(format_failure(
                f"{plan.what} failed ({status}) while building the image.",
                step or "; ".join(plan.commands), tail,
                f"{failure_hint(tail) or plan.fix} Then deploy again. Full log: {log}"))
        if not keep.is_dir():
            raise BuildError(f"saving what {plan.what} wrote failed: the engine did not copy "
                             f"the build container's files to {keep}. Check free space under "
                             f"{self.settings.images} and deploy again.")
        strip_mount_points(keep, plan.binds)
        return dataclasses.replace(image, hash=key, layers=(keep, *image.layers))


# (what a build's output says, what to do) for failures with a known cause.
FAILURE_HINTS = (
    (("gcc", "No such file or directory"), "The package compiles C code and the image has no "
     "compiler: add .apt_install(\"build-essential\") (and the -dev packages of the libraries "
     "it needs) before this step."),
    (("Python.h",), "The package compiles against Python's headers: add "
     ".apt_install(\"python3-dev\", \"build-essential\") before this step."),
    (("is ignored: it is either a non-existing path",), "A find_links= path is a path inside "
     "the image, not on your machine: add the directory first (add_local_dir) or give a URL."),
    (("ModuleNotFoundError",), "The file imports a module the image doesn't have yet: install "
     "it in an earlier step."),
)


def failure_hint(tail: list[str]) -> str:
    """What to do about a build step's failure, when its output shows a known cause."""
    text = "\n".join(tail)
    for needles, hint in FAILURE_HINTS:
        if all(needle in text for needle in needles):
            return hint
    return ""


def strip_mount_points(layer: Path, binds: tuple[str, ...]) -> None:
    """Drop what the engine made in the upper dir to mount ``binds`` on: empty files
    and directories (and their parents, if emptied), never anything with contents."""
    for bind in sorted(binds, key=len, reverse=True):
        path = layer / bind.lstrip("/")
        while path != layer:
            if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
                path.unlink()
            elif path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()
            else:
                break
            path = path.parent
