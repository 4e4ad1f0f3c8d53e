"""The image *spec*: a container's root filesystem, its packages and files.

An Image starts from a base (``debian_slim()``: a Debian root filesystem of its
own; ``from_registry(tag)``: an OCI image; ``from_host()``: the host's root,
read-only) and is an immutable list of layers; each builder method returns a new
Image with one more layer. ``hash`` covers the layers and the *contents* of the
local files they add, so editing a file added with ``add_local_file`` gives a
new image (and a new snapshot key). Building is the server's job.

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
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
    def debian_slim(cls, python_version: str | None = None) -> Image:
        """A minimal Debian root filesystem with Python and pip, built once per host
        from the Debian archive. ``python_version`` ("3.11", ...) picks the Debian
        release that ships it; None: the server's Python version where one does."""
        if python_version is not None:
            debian_python(python_version)  # a version no Debian suite ships: say so now
        return cls(({"op": "debian_slim", "python_version": python_version},))

    @classmethod
    def from_registry(cls, tag: str, add_python: str | None = None) -> Image:
        """An image from a container registry ("python:3.11-slim",
        "registry.example.com/team/app:1.2"), pulled once per digest. Its Python
        runs the functions; ``add_python`` ("3.11" or "3.13") adds a Python of its
        own to the image and runs them in that one (even if the image has one).

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
        return cls(({"op": "from_registry", "tag": tag.strip(), "add_python": add_python},))

    def pip_install(self, *packages: str | list[str], find_links: str | None = None,
                    index_url: str | None = None, extra_index_url: str | None = None,
                    pre: bool = False, extra_options: str = "") -> Image:
        """Install PyPI packages with pip (into the image's Python; on ``from_host()``
        into a virtual environment over the host's packages)."""
        names = _flatten("pip_install", packages)
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        return self._add({"op": "pip_install", "packages": names,
                          **({"options": options} if options else {})})

    def uv_pip_install(self, *packages: str | list[str], find_links: str | None = None,
                       index_url: str | None = None, extra_index_url: str | None = None,
                       pre: bool = False, extra_options: str = "") -> Image:
        """Install PyPI packages with uv (faster than pip on big dependency sets)."""
        names = _flatten("uv_pip_install", packages)
        options = _pip_options(find_links, index_url, extra_index_url, pre, extra_options)
        return self._add({"op": "uv_pip_install", "packages": names,
                          **({"options": options} if options else {})})

    def pip_install_from_requirements(self, requirements_txt: str | os.PathLike[str],
                                      find_links: str | None = None,
                                      index_url: str | None = None,
                                      extra_index_url: str | None = None, pre: bool = False,
                                      extra_options: str = "") -> Image:
        """Install what a local requirements file lists (read at definition time)."""
        path = Path(_resolve(requirements_txt, "pip_install_from_requirements", want_dir=False))
        requirements = _requirement_lines(path)
        if not requirements:
            raise InvalidError(f"Image.pip_install_from_requirements({str(requirements_txt)!r}):"
                               f" {path} lists no requirements")
        return self.pip_install(*requirements, find_links=find_links, index_url=index_url,
                                extra_index_url=extra_index_url, pre=pre,
                                extra_options=extra_options)

    def pip_install_from_pyproject(self, pyproject_toml: str | os.PathLike[str],
                                   optional_dependencies: list[str] | None = None,
                                   find_links: str | None = None,
                                   index_url: str | None = None,
                                   extra_index_url: str | None = None, pre: bool = False,
                                   extra_options: str = "") -> Image:
        """Install a local pyproject.toml's ``[project] dependencies`` and the named
        ``optional-dependencies`` groups (read at definition time)."""
        path = Path(_resolve(pyproject_toml, "pip_install_from_pyproject", want_dir=False))
        requirements = _pyproject_requirements(path, optional_dependencies or [])
        if not requirements:
            return self
        return self.pip_install(*requirements, find_links=find_links, index_url=index_url,
                                extra_index_url=extra_index_url, pre=pre,
                                extra_options=extra_options)

    def apt_install(self, *packages: str | list[str]) -> Image:
        """Install Debian packages with apt-get (images with a root of their own)."""
        names = _flatten("apt_install", packages)
        for name in names:
            if name.startswith("-") or not all(c.isalnum() or c in "+-.:=~_" for c in name):
                raise InvalidError(f"Image.apt_install({name!r}): not a Debian package name")
        return self._add({"op": "apt_install", "packages": names})

    def run_function(self, raw_f: Callable[..., Any], *, args: Sequence[Any] = (),
                     kwargs: dict[str, Any] | None = None) -> Image:
        """Run a global function of a local file at build time, in a build container of
        the image so far (with network): what it writes, anywhere, lands in the image
        (downloading model weights, say). The file is imported there, so what it imports
        at module level must be in the image by then; editing it rebuilds the step."""
        name = getattr(raw_f, "__name__", "")
        if getattr(raw_f, "raw_f", None) is not None:  # an @app.function: its function
            raw_f = raw_f.raw_f  # type: ignore[attr-defined]
        qualname = getattr(raw_f, "__qualname__", "")
        if not inspect.isfunction(raw_f) or qualname != name:
            raise InvalidError(f"Image.run_function({raw_f!r}): give a function defined at the "
                               "top level of a file (not a lambda, method or nested function)")
        file = inspect.getsourcefile(raw_f)
        if file is None or not Path(file).is_file():
            raise InvalidError(f"Image.run_function({name}): its source file is not on disk")
        blob = dumps_args(tuple(args), dict(kwargs or {}))
        # The file's text travels in the layer: its hash covers it, the build needs it.
        return self._add({"op": "run_function", "filename": Path(file).name, "name": name,
                          "source": base64.b64encode(Path(file).read_bytes()).decode(),
                          "args": base64.b64encode(blob).decode()})

    def workdir(self, path: str | os.PathLike[str]) -> Image:
        """The working directory of later build steps and of the containers."""
        return self._add({"op": "workdir", "path": _remote(os.fspath(path))})

    def dockerfile_commands(self, *dockerfile_commands: str | list[str],
                            context_dir: str | os.PathLike[str] | None = None) -> Image:
        """Dockerfile instructions: RUN, ENV, WORKDIR and COPY of local files (relative to
        ``context_dir``, default the working directory). FROM is not allowed: start from
        ``Image.from_registry``."""
        from coldsnap._dockerfile import apply_dockerfile

        lines = _flatten("dockerfile_commands", dockerfile_commands)
        return apply_dockerfile(self, lines, Path(context_dir or "."))

    def run_commands(self, *commands: str) -> Image:
        """Run shell commands at build time, in order."""
        _check_strings("run_commands", commands)
        return self._add({"op": "run_commands", "commands": list(commands)})

    def add_local_file(self, local_path: str | os.PathLike[str], remote_path: str) -> Image:
        """Copy one local file to ``remote_path`` (absolute) in the image."""
        local = _resolve(local_path, "add_local_file", want_dir=False)
        return self._add({"op": "add_local_file", "local": local, "remote": _remote(remote_path)})

    def add_local_dir(self, local_path: str | os.PathLike[str], remote_path: str) -> Image:
        """Copy a local directory tree to ``remote_path`` (absolute) in the image."""
        local = _resolve(local_path, "add_local_dir", want_dir=True)
        return self._add({"op": "add_local_dir", "local": local, "remote": _remote(remote_path)})

    def add_local_python_source(self, *modules: str) -> Image:
        """Copy local Python modules or packages, found the way ``import`` finds them,
        next to the app's file in the image, so the app's ``import`` of them works.

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
                image = image.add_local_dir(package, f"{CODE_DIR}/{name}")
            elif spec is not None and spec.origin and spec.origin.endswith(".py"):
                image = image.add_local_file(spec.origin, f"{CODE_DIR}/{name}.py")
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

    def _add(self, layer: dict[str, Any]) -> Image:
        return Image((*self._layers, layer))


def _flatten(method: str, values: tuple[Any, ...]) -> list[str]:
    """Modal's methods take strings and lists of strings alike."""
    flat: list[Any] = []
    for value in values:
        flat += value if isinstance(value, list | tuple) else [value]
    _check_strings(method, tuple(flat))
    return [str(value).strip() for value in flat]


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


def _requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements file: comments and blank lines dropped,
    option lines (``--extra-index-url X``) split into words, ``-r`` files followed."""
    found: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            found += _requirement_lines(path.parent / line.split(None, 1)[1])
        elif line.startswith("-"):
            found += shlex.split(line)
        else:
            found.append(line)
    return found


def _pyproject_requirements(path: Path, groups: list[str]) -> list[str]:
    try:
        project = tomllib.loads(path.read_text()).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise InvalidError(f"Image.pip_install_from_pyproject: {path} is not valid TOML: "
                           f"{exc}") from None
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for group in groups:
        if group not in optional:
            raise InvalidError(f"Image.pip_install_from_pyproject: {path} has no optional "
                               f"dependency group {group!r}; it has {sorted(optional)}")
        requirements += optional[group]
    return requirements


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
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidError(
            f"the remote path {path!r} must be absolute (start with '/'), e.g. '/root/data'."
        )
    return path

