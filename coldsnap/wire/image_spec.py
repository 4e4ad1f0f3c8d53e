"""An image spec as the SDK writes it and the server builds it: layers and a content hash.

``coldsnap.Image`` is the user's builder of specs; ``ImageSpec`` is the data
it produces, the form a description carries and the image builder reads. Each
layer is one step: ``{"op": "pip_install", "packages": [...]}`` and so on
(``OPS``); the first is the base (``BASE_OPS``): ``from_host`` (the host's root,
read-only), ``debian_slim`` or ``from_registry`` (a root filesystem of its own).
Optional keys a step may carry: ``"force_build"`` (a nonce: the step and those
after it are built again), ``"expand": true`` on an ``env`` step from a Dockerfile
ENV (its values use Docker's ``$NAME``/``${NAME}`` syntax, expanded by the
server against the image's environment so far: ``layer_env``), and on
``add_local_dir`` ``"ignore"`` (dockerignore patterns) and ``"exclude"``
(relative paths a callable left out on the client): ``Ignore``.
Example::

    spec = ImageSpec.from_dict({"layers": [{"op": "from_host"},
                                           {"op": "env", "vars": {"MODE": "fast"}}]})
    spec.env()  # {"MODE": "fast"}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
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

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables the ``env`` layers set, later ones winning; Dockerfile ENV
        values expanded against ``base`` (the image's own env) plus those before them."""
        env: dict[str, str] = {}
        for layer in self.layers:
            if layer["op"] == "env":
                env.update(layer_env(layer, {**(base or {}), **env}))
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
                _hash_dir(digest, Path(layer["local"]), Ignore.of(layer))
        return digest.hexdigest()


def layer_env(layer: dict[str, Any], scope: Mapping[str, str]) -> dict[str, str]:
    """An ``env`` layer's variables; a Dockerfile ENV's (``"expand"``) with their
    ``$NAME`` references expanded against ``scope``, as Docker does: every value of
    one ENV against the environment before it."""
    if not layer.get("expand"):
        return dict(layer["vars"])
    return {name: expand(value, scope) for name, value in layer["vars"].items()}


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


def _hash_dir(digest: Any, root: Path, ignore: Ignore) -> None:
    if not root.is_dir():
        raise InvalidError(
            f"can't hash image directory {root}: it no longer exists. It was added with "
            "add_local_dir and must still exist when the app is deployed."
        )
    files = (p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and not ignore(str(p.relative_to(root))))
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        _hash_file(digest, path)


# -- Docker's variable substitution ----------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":+", "-", "+")


def expand(text: str, scope: Mapping[str, str], keep_unknown: bool = False) -> str:
    """``text`` with ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME:+alt}`` (and
    ``-``/``+`` without the colon) replaced from ``scope``, as a Dockerfile does; an
    unset name gives "". ``\\$`` is a literal ``$`` and ``\\\\`` a backslash.

    ``keep_unknown`` (the client, which knows only some names): names not in
    ``scope`` stay as written and the output keeps the escapes, so the server can
    expand the rest later."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 2] in ("$", "\\"):
            out.append(text[i:i + 2] if keep_unknown else text[i + 1])
            i += 2
        elif text[i] == "$" and (found := _reference(text, i)) is not None:
            (name, operator, word), end = found
            value = _substitute(name, operator, word, scope, keep_unknown)
            out.append(text[i:end] if value is None else value)
            i = end
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def has_reference(text: str) -> bool:
    """True when ``text`` has an unescaped ``$NAME`` or ``${...}``."""
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 2] in ("$", "\\"):
            i += 2
            continue
        if text[i] == "$" and _reference(text, i) is not None:
            return True
        i += 1
    return False


def _reference(text: str, start: int) -> tuple[tuple[str, str, str], int] | None:
    """The reference at ``text[start]`` ("$"): ((name, operator, word), its end)."""
    if text.startswith("${", start):
        end, depth = start + 2, 1
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        inner = text[start + 2:end - 1]
        name = _NAME.match(inner)
        rest = inner[name.end():] if name and depth == 0 else None
        operator = next((op for op in _OPERATORS if rest and rest.startswith(op)), "")
        if name is None or rest is None or (rest and not operator):
            raise InvalidError(f"bad substitution {text[start:end]!r} in {text!r}: write "
                               "$NAME, ${NAME}, ${NAME:-default} or ${NAME:+alternative}")
        return (name.group(), operator, rest[len(operator):]), end
    name = _NAME.match(text, start + 1)
    return ((name.group(), "", ""), name.end()) if name else None


def _substitute(name: str, operator: str, word: str, scope: Mapping[str, str],
                keep_unknown: bool) -> str | None:
    """The value of one reference; None: unknown, keep it as written."""
    if name not in scope and keep_unknown:
        return None
    value = scope.get(name)
    if keep_unknown and value is not None:  # the server reads our output again
        value = value.replace("\\", "\\\\").replace("$", "\\$")
    is_set = value is not None and (bool(value) or not operator.startswith(":"))
    if operator.endswith("-"):
        return value if is_set else expand(word, scope, keep_unknown)
    if operator.endswith("+"):
        return expand(word, scope, keep_unknown) if is_set else ""
    return value or ""


# -- which files of a directory an image leaves out --------------------------------------


@dataclasses.dataclass(frozen=True)
class Ignore:
    """The files ``add_local_dir(..., ignore=...)`` leaves out, by their path relative
    to the directory: dockerignore ``patterns`` (``*`` within a name, ``**`` across
    directories, ``!`` to take a file back; a pattern that matches a directory leaves
    out all of it) and ``excluded`` paths (files or whole directories)."""

    patterns: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()

    @classmethod
    def of(cls, layer: dict[str, Any]) -> Ignore:
        return cls(tuple(layer.get("ignore", ())), frozenset(layer.get("exclude", ())))

    @property
    def prunes_directories(self) -> bool:
        """True when a left-out directory can be skipped whole (no ``!`` pattern
        could take back a file under it)."""
        return not any(p.strip().startswith("!") for p in self.patterns)

    def __call__(self, relative: str) -> bool:
        parts = Path(relative).parts
        if any("/".join(parts[:n]) in self.excluded for n in range(1, len(parts) + 1)):
            return True
        ignored = False
        paths = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]  # the dirs above too
        for pattern in self.patterns:
            negated, regex = _compile(pattern)
            if regex is not None and any(regex.fullmatch(path) for path in paths):
                ignored = not negated  # the last pattern that matches decides
        return ignored


def _compile(pattern: str) -> tuple[bool, re.Pattern[str] | None]:
    """(negated, regex) of a dockerignore pattern; None: a blank or a comment."""
    text = pattern.strip()
    negated = text.startswith("!")
    text = text[1:].strip() if negated else text
    text = "/".join(p for p in text.strip("/").split("/") if p not in ("", "."))
    if not text or text.startswith("#"):
        return negated, None
    regex, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif text[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif text[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif text[i] == "[" and (close := text.find("]", i + 2)) != -1:
            body = text[i + 1:close]
            regex += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = close + 1
        else:
            regex, i = regex + re.escape(text[i]), i + 1
    return negated, re.compile(regex)
