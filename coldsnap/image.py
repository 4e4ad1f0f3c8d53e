"""The image *spec*: what a container's filesystem holds on top of the host.

An Image is an immutable list of layers; each builder method returns a new
Image with one more layer. ``hash`` covers the layers and the *contents* of the
local files they add, so editing a file added with ``add_local_file`` gives a
new image (and a new snapshot key). Building is the server's job.

Example::

    image = coldsnap.Image.from_host().pip_install("numpy").env({"MODE": "fast"})
    with image.imports():
        import numpy as np   # optional on the client, required in the container
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coldsnap.wire.container import CODE_DIR, in_container
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.image_spec import ImageSpec


class Image:
    """An immutable image spec. Start with ``Image.from_host()``."""

    def __init__(self, layers: tuple[dict[str, Any], ...]) -> None:
        self._layers = layers

    @classmethod
    def from_host(cls) -> Image:
        """The host's root filesystem and Python, read-only, with nothing added."""
        return cls(({"op": "from_host"},))

    def pip_install(self, *packages: str) -> Image:
        """Install PyPI packages into the image's virtual environment."""
        _check_strings("pip_install", packages)
        return self._add({"op": "pip_install", "packages": list(packages)})

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

