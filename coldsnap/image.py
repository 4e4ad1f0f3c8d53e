"""The image *spec*: a container's root filesystem, its packages and files.

An Image starts from a base (``debian_slim()``: a Debian root filesystem of its
own; ``from_registry(tag)``: an OCI image; ``from_host()``: the host's root,
read-only) and is an immutable list of layers; each builder method returns a new
Image with one more layer. ``hash`` covers the layers and the *contents* of the
local files they add, so editing a file added with ``add_local_file`` gives a
new image (and a new snapshot key). Building is the server's job.

Inside a container (``in_container()``) the image is already built, and the app
file that defines it is imported again to run its functions: no method reads a
local file there (the files are not there, and they are in the image already).

Example::

    image = coldsnap.Image.debian_slim().pip_install("numpy").env({"MODE": "fast"})
    with image.imports():
        import numpy as np   # optional on the client, required in the container
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import inspect
import json
import os
import shlex
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from coldsnap._local_files import ignore_keys, pyproject_requirements, requirement_lines
from coldsnap.app_objects import step_objects
from coldsnap.wire.bases import DEBIAN_SUITES, available_pythons, debian_python
from coldsnap.wire.container import CODE_DIR, in_container
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.image_spec import ImageSpec
from coldsnap.wire.serialization import dumps_args


class Image:
    """An immutable image spec. Start with ``Image.debian_slim()``,
    ``Image.from_registry(tag)`` or ``Image.from_host()``."""

    def __init__(self, layers: tuple[dict[str, Any], ...]) -> None:
        self._layers = layers

    @classmethod
    def from_host(cls) -> Image:
        """The host's root filesystem and Python, read-only, with nothing added.

        Its containers see the host's files, minus what coldsnap hides (home
        directories, the host's /tmp, every coldsnap state dir): use it for code you
        trust; ``debian_slim()`` sees nothing of the host.
        """
        return cls(({"op": "from_host"},))

    @classmethod
    def debian_slim(cls, python_version: str | None = None, force_build: bool = False
                    ) -> Image:
        """A minimal Debian root filesystem with Python and pip, built once per host
        from the Debian archive. ``python_version`` ("3.11", ...) picks the Debian
        release that ships it; None: the server's Python version where one does.
        ``force_build``: build every step on it again (the base itself is kept)."""
        if python_version is not None:
            debian_python(python_version)  # a version no Debian suite ships: say so now
        return cls((_forced({"op": "debian_slim", "python_version": python_version},
                            force_build),))

    @classmethod
    def from_registry(cls, tag: str, add_python: str | None = None,
                      force_build: bool = False) -> Image:
        """An image from a container registry ("python:3.11-slim",
        "registry.example.com/team/app:1.2"), pulled once per digest. Its Python
        runs the functions; ``add_python`` ("3.11" or "3.13") adds a Python of its
        own to the image and runs them in that one (even if the image has one).
        ``force_build``: build every step on it again (the pulled image is kept).

        Example::

            Image.from_registry("busybox:1.36", add_python="3.11").pip_install("six")
        """
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidError(f"Image.from_registry() takes an image reference such as "
                               f"'python:3.11-slim', got {tag!r}")
        if add_python is not None and add_python not in DEBIAN_SUITES:
            raise InvalidError(f"from_registry(add_python={add_python!r}): coldsnap can add "
                               f"Python {available_pythons()}; write one of those as a string "
                               "such as '3.11', or leave add_python out to use the image's own "
                               "Python")
        return cls((_forced({"op": "from_registry", "tag": tag.strip(),
                             "add_python": add_python}, force_build),))

    def pip_install(self, *packages: str | list[str], find_links: str | None = None,
                    index_url: str | None = None, extra_index_url: str | None = None,
                    pre: bool = False, extra_options: str = "",
                    force_build: bool = False) -> Image:
        """Install PyPI packages with pip (into the image's Python; on ``from_host()``
        into a virtual environment over the host's packages). ``force_build`` (every
        step method has it): build this step and those after it again, on every deploy."""
        names = _flatten("pip_install", packages)
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        return self._add({"op": "pip_install", "packages": names,
                          **({"options": options} if options else {})}, force_build)

    def uv_pip_install(self, *packages: str | list[str], find_links: str | None = None,
                       index_url: str | None = None, extra_index_url: str | None = None,
                       pre: bool = False, extra_options: str = "",
                       force_build: bool = False) -> Image:
        """Install PyPI packages with uv (faster than pip on big dependency sets)."""
        names = _flatten("uv_pip_install", packages)
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        return self._add({"op": "uv_pip_install", "packages": names,
                          **({"options": options} if options else {})}, force_build)

    def pip_install_from_requirements(self, requirements_txt: str | os.PathLike[str],
                                      find_links: str | None = None,
                                      index_url: str | None = None,
                                      extra_index_url: str | None = None, pre: bool = False,
                                      extra_options: str = "",
                                      force_build: bool = False) -> Image:
        """Install what a local requirements file lists (read at definition time)."""
        if in_container():  # built: the file stayed on the client
            return self
        path = Path(_resolve(requirements_txt, "pip_install_from_requirements", want_dir=False))
        requirements = requirement_lines(path)
        if not requirements:
            raise InvalidError(f"Image.pip_install_from_requirements({str(requirements_txt)!r}):"
                               f" {path} lists no requirements")
        return self.pip_install(*requirements, find_links=find_links, index_url=index_url,
                                extra_index_url=extra_index_url, pre=pre,
                                extra_options=extra_options, force_build=force_build)

    def pip_install_from_pyproject(self, pyproject_toml: str | os.PathLike[str],
                                   optional_dependencies: list[str] | None = None,
                                   find_links: str | None = None,
                                   index_url: str | None = None,
                                   extra_index_url: str | None = None, pre: bool = False,
                                   extra_options: str = "",
                                   force_build: bool = False) -> Image:
        """Install a local pyproject.toml's ``[project] dependencies`` and the named
        ``optional-dependencies`` groups (read at definition time)."""
        if in_container():  # built: the file stayed on the client
            return self
        path = Path(_resolve(pyproject_toml, "pip_install_from_pyproject", want_dir=False))
        requirements = pyproject_requirements(path, optional_dependencies or [])
        if not requirements:
            return self
        return self.pip_install(*requirements, find_links=find_links, index_url=index_url,
                                extra_index_url=extra_index_url, pre=pre,
                                extra_options=extra_options, force_build=force_build)

    def apt_install(self, *packages: str | list[str], force_build: bool = False) -> Image:
        """Install Debian packages with apt-get (images with a root of their own)."""
        names = _flatten("apt_install", packages)
        for name in names:
            if name.startswith("-") or not all(c.isalnum() or c in "+-.:=~_" for c in name):
                raise InvalidError(f"Image.apt_install({name!r}): not a Debian package name")
        return self._add({"op": "apt_install", "packages": names}, force_build)

    def run_function(self, raw_f: Callable[..., Any], *, args: Sequence[Any] = (),
                     kwargs: dict[str, Any] | None = None, force_build: bool = False,
                     secrets: Sequence[Any] = (), volumes: dict[str, Any] | None = None
                     ) -> Image:
        """Run a global function of a local file at build time, in a build container of
        the image so far (with network): what it writes, anywhere, lands in the image
        (downloading model weights, say). The file is imported there, so what it imports
        at module level must be in the image by then; editing it rebuilds the step.
        ``secrets`` (named ones) are its env, ``volumes`` are mounted, as for a function;
        neither a value nor a volume's files rebuild the step."""
        objects = step_objects("Image.run_function", secrets, volumes)
        name = getattr(raw_f, "__name__", "")
        if getattr(raw_f, "raw_f", None) is not None:  # an @app.function: its function
            raw_f = raw_f.raw_f  # type: ignore[attr-defined]
        qualname = getattr(raw_f, "__qualname__", "")
        if not inspect.isfunction(raw_f) or qualname != name:
            raise InvalidError(f"Image.run_function({raw_f!r}): give a function defined at the "
                               "top level of a file (not a lambda, method or nested function)")
        file = inspect.getsourcefile(raw_f)
        if in_container():  # built: what it wrote is in the image
            return self._add({"op": "run_function", "filename": Path(file or "").name,
                              "name": name, "source": "", "args": "", **objects})
        if file is None or not Path(file).is_file():
            raise InvalidError(f"Image.run_function({name}): its source file is not on disk")
        blob = dumps_args(tuple(args), dict(kwargs or {}))
        # The file's text travels in the layer: its hash covers it, the build needs it.
        return self._add({"op": "run_function", "filename": Path(file).name, "name": name,
                          "source": base64.b64encode(Path(file).read_bytes()).decode(),
                          "args": base64.b64encode(blob).decode(), **objects}, force_build)

    def workdir(self, path: str | os.PathLike[str]) -> Image:
        """The working directory of later build steps and of the containers."""
        return self._add({"op": "workdir", "path": _remote(os.fspath(path))})

    def dockerfile_commands(self, *dockerfile_commands: str | list[str],
                            context_dir: str | os.PathLike[str] | None = None,
                            force_build: bool = False) -> Image:
        """Dockerfile instructions: RUN, ENV, ARG, WORKDIR and COPY of local files (relative
        to ``context_dir``, default the working directory). FROM is not allowed: start
        from ``Image.from_registry``."""
        from coldsnap._dockerfile import apply_dockerfile

        lines = _flatten("dockerfile_commands", dockerfile_commands)
        image = apply_dockerfile(self, lines, Path(context_dir or "."))
        if not force_build or len(image._layers) == len(self._layers):
            return image
        first = len(self._layers)  # a nonce in its first step rebuilds it and the rest
        return Image((*image._layers[:first], _forced(image._layers[first], True),
                      *image._layers[first + 1:]))

    def run_commands(self, *commands: str | list[str], force_build: bool = False,
                     secrets: Sequence[Any] = (), volumes: dict[str, Any] | None = None
                     ) -> Image:
        """Run shell commands at build time, in order (strings or lists of strings);
        ``secrets`` and ``volumes`` as for ``run_function``."""
        return self._add({"op": "run_commands",
                          "commands": _flatten("run_commands", commands, strip=False),
                          **step_objects("Image.run_commands", secrets, volumes)},
                         force_build)

    def add_local_file(self, local_path: str | os.PathLike[str], remote_path: str,
                       copy: bool = False) -> Image:
        """Copy one local file to ``remote_path`` (absolute) in the image; a
        ``remote_path`` ending in "/" is a directory, the file keeps its name in it.
        ``copy`` is accepted for Modal's sake: coldsnap always copies local files into
        the image, so later build steps see them (Modal's ``copy=True``)."""
        local = _resolve(local_path, "add_local_file", want_dir=False)
        remote = _remote(os.fspath(remote_path))
        if remote.endswith("/"):
            remote += Path(local).name
        return self._add({"op": "add_local_file", "local": local, "remote": remote})

    def add_local_dir(self, local_path: str | os.PathLike[str], remote_path: str,
                      copy: bool = False,
                      ignore: Sequence[str] | Callable[[Path], bool] = ()) -> Image:
        """Copy a local directory's contents to ``remote_path`` (absolute) in the image.

        ``ignore`` leaves files out, by their path relative to the directory: a list
        of dockerignore patterns (``["*.venv", "**/*.ckpt", "!keep.ckpt"]``), or a
        function of that ``Path`` that returns True to leave a file out. Left-out files
        are neither copied nor hashed. ``copy``: as for ``add_local_file``.

        Example::

            image = Image.debian_slim().add_local_dir("src", "/srv/src",
                                                      ignore=["**/*.log", "tests"])
        """
        local = _resolve(local_path, "add_local_dir", want_dir=True)
        layer = {"op": "add_local_dir", "local": local, "remote": _remote(os.fspath(remote_path))}
        return self._add({**layer, **ignore_keys("add_local_dir", Path(local), ignore)})

    def add_local_python_source(self, *modules: str, copy: bool = False,
                                ignore: Sequence[str] | Callable[[Path], bool] = ()) -> Image:
        """Copy local Python modules or packages, found the way ``import`` finds them,
        next to the app's file in the image, so the app's ``import`` of them works.
        ``ignore`` leaves files of a package out, as in ``add_local_dir``.

        ``coldsnap deploy`` adds the modules an app imports from its own directory
        by itself; this is for the others (e.g. from a folder on ``PYTHONPATH``).
        """
        _check_strings("add_local_python_source", modules)
        image = self
        for name in modules:
            if not name.isidentifier():
                raise InvalidError(
                    f"Image.add_local_python_source({name!r}): give top-level module names, "
                    "like 'helpers' for helpers.py or a helpers/ package."
                )
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations:
                package = next(iter(spec.submodule_search_locations))
                image = image.add_local_dir(package, f"{CODE_DIR}/{name}", ignore=ignore)
            elif spec is not None and spec.origin and spec.origin.endswith(".py"):
                image = image.add_local_file(spec.origin, f"{CODE_DIR}/{name}.py")
            elif in_container():  # built: the module is in the image, maybe elsewhere
                continue
            else:
                what = "not on sys.path" if spec is None else f"not Python source ({spec.origin})"
                raise InvalidError(
                    f"Image.add_local_python_source({name!r}): the module is {what}. "
                    "Installed packages go in with Image.pip_install()."
                )
        return image

    def env(self, variables: dict[str, str]) -> Image:
        """Set environment variables in containers of this image."""
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
        ):
            raise InvalidError(
                f"Image.env() takes a dict of str to str, got {variables!r}; "
                "convert values with str()."
            )
        return self._add({"op": "env", "vars": dict(sorted(variables.items()))})

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Imports that need this image's packages.

        On the client a missing package is tolerated (the names stay undefined);
        inside a container the ImportError is raised, so a broken image fails
        the boot with a clear message instead of a NameError later.
        """
        try:
            yield
        except ImportError:
            if in_container():
                raise

    @property
    def layers(self) -> list[dict[str, Any]]:
        return [dict(layer) for layer in self._layers]

    @property
    def hash(self) -> str:
        """sha256 over the layers, with local files hashed by their contents."""
        return self.spec.hash()

    @property
    def spec(self) -> ImageSpec:
        """The data this Image stands for, as a deploy sends it to the server."""
        return ImageSpec(tuple(self.layers))

    def to_dict(self) -> dict[str, Any]:
        return self.spec.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Image:
        return cls(ImageSpec.from_dict(data).layers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and self._layers == other._layers

    def __hash__(self) -> int:
        return hash(json.dumps(self.layers, sort_keys=True))

    def __repr__(self) -> str:
        return f"Image({', '.join(layer['op'] for layer in self._layers)})"

    def _add(self, layer: dict[str, Any], force_build: bool = False) -> Image:
        return Image((*self._layers, _forced(layer, force_build)))


def _forced(layer: dict[str, Any], force_build: bool) -> dict[str, Any]:
    """``layer``, with a fresh nonce when ``force_build``: a new hash, so the server
    builds the step (and every step after it) again instead of using its cache."""
    if not isinstance(force_build, bool):
        raise InvalidError(f"force_build= takes True or False, got {force_build!r}")
    return {**layer, "force_build": uuid.uuid4().hex} if force_build else layer


def _flatten(method: str, values: tuple[Any, ...], strip: bool = True) -> list[str]:
    """Modal's methods take strings and lists of strings alike."""
    flat: list[Any] = []
    for value in values:
        flat += value if isinstance(value, list | tuple) else [value]
    _check_strings(method, tuple(flat))
    return [str(value).strip() if strip else str(value) for value in flat]


def _pip_options(find_links: str | None, index_url: str | None,
                 extra_index_url: str | None, pre: bool, extra_options: str) -> list[str]:
    options = []
    for flag, value in (("--find-links", find_links), ("--index-url", index_url),
                        ("--extra-index-url", extra_index_url)):
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise InvalidError(f"{flag.strip('-').replace('-', '_')}= takes a non-empty "
                                   f"string, got {value!r}")
            options += [flag, value.strip()]
    if pre:
        options.append("--pre")
    if not isinstance(extra_options, str):
        raise InvalidError(f"extra_options= takes a string of pip options, got {extra_options!r}")
    return options + shlex.split(extra_options)


def _check_strings(method: str, values: tuple[Any, ...]) -> None:
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise InvalidError(
            f"Image.{method}() takes one or more non-empty strings, got {values!r}."
        )


def _resolve(path: str | os.PathLike[str], method: str, want_dir: bool) -> str:
    # Relative paths mean the caller's working directory, as in Modal.
    resolved = Path(path).expanduser().resolve()
    if in_container():  # the image is built: its files are in it, not at this path
        return str(resolved)
    ok = resolved.is_dir() if want_dir else resolved.is_file()
    if not ok:
        kind = "directory" if want_dir else "file"
        raise InvalidError(
            f"Image.{method}({str(path)!r}, ...): {resolved} is not an existing {kind}. "
            "Relative paths are resolved against the current working directory."
        )
    return str(resolved)


def _remote(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise InvalidError(
            f"the remote path {path!r} must be absolute (start with '/'), e.g. '/root/data'."
        )
    return path

