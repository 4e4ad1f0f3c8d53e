"""An image spec as the SDK writes it and the server builds it: layers and a content hash.

``coldsnap.Image`` is the user's builder of specs; ``ImageSpec`` is the data
it produces, the form a description carries and the image builder reads. Each
layer is one step: ``{"op": "pip_install", "packages": [...]}`` and so on
(``OPS``); the first is the base (``BASE_OPS``): ``from_host`` (the host's root,
read-only), ``debian_slim`` or ``from_registry`` (a root filesystem of its own).
Example::

    spec = ImageSpec.from_dict({"layers": [{"op": "from_host"},
                                           {"op": "env", "vars": {"MODE": "fast"}}]})
    spec.env()  # {"MODE": "fast"}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from coldsnap.wire.errors import InvalidError

# The first layer: where the root filesystem comes from.
BASE_OPS = ("from_host", "debian_slim", "from_registry")
# The steps on top of it.
STEP_OPS = ("pip_install", "uv_pip_install", "apt_install", "run_commands", "add_local_file",
            "add_local_dir", "env", "workdir", "run_function")
OPS = BASE_OPS + STEP_OPS


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    layers: tuple[dict[str, Any], ...] = ({"op": "from_host"},)

    @classmethod
    def from_dict(cls, data: Any) -> ImageSpec:
        """Check and type ``{"layers": [...]}``; InvalidError says what is wrong."""
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict) \
                or layers[0].get("op") not in BASE_OPS:
            raise InvalidError(f"not an image spec (it must start with one of {BASE_OPS}): "
                               f"{data!r}")
        for layer in layers[1:]:
            if not isinstance(layer, dict) or layer.get("op") not in STEP_OPS:
                raise InvalidError(f"image layer {layer!r} has an unknown op; known: {STEP_OPS}")
        return cls(tuple(dict(layer) for layer in layers))

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [dict(layer) for layer in self.layers]}

    def ops(self) -> list[str]:
        return [layer["op"] for layer in self.layers]

    @property
    def base(self) -> dict[str, Any]:
        """The first layer: ``{"op": "from_host"}``, ``{"op": "debian_slim", ...}``..."""
        return self.layers[0]

    @property
    def own_root(self) -> bool:
        """True when containers of this image see its root filesystem, not the host's."""
        return self.base["op"] != "from_host"

    def prefix(self, count: int) -> ImageSpec:
        """The image of the first ``count`` layers (a build caches each step's)."""
        return ImageSpec(self.layers[:count])

    def workdir(self) -> str:
        """The last ``workdir`` step's path, or "" (the app's code dir)."""
        paths = [layer["path"] for layer in self.layers if layer["op"] == "workdir"]
        return paths[-1] if paths else ""

    def env(self) -> dict[str, str]:
        """The variables the ``env`` layers set, later ones winning."""
        env: dict[str, str] = {}
        for layer in self.layers:
            if layer["op"] == "env":
                env.update(layer["vars"])
        return env

    def hash(self) -> str:
        """sha256 over the layers, with local files hashed by their contents: editing a
        file added with add_local_file gives a new image (and a new snapshot key)."""
        digest = hashlib.sha256()
        for layer in self.layers:
            digest.update(json.dumps(layer, sort_keys=True).encode())
            if layer["op"] == "add_local_file":
                _hash_file(digest, Path(layer["local"]))
            elif layer["op"] == "add_local_dir":
                _hash_dir(digest, Path(layer["local"]))
        return digest.hexdigest()


def _hash_file(digest: Any, path: Path) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidError(
            f"can't hash image file {path}: {exc}. Files an image adds (add_local_file, "
            "add_local_dir) must still exist when the app is deployed."
        ) from exc
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)


def _hash_dir(digest: Any, root: Path) -> None:
    if not root.is_dir():
        raise InvalidError(
            f"can't hash image directory {root}: it no longer exists. It was added with "
            "add_local_dir and must still exist when the app is deployed."
        )
    files = (p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        _hash_file(digest, path)
