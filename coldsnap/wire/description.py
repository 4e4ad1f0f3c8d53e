"""What a deploy learns about an app: ``AppDescription``, typed.

The runtime's ``describe`` command imports the app file and prints
``AppDescription.to_dict()`` as JSON; the server reads it back with
``from_dict`` (which validates it, once), names the version after it, stores
it and builds each function's ``FunctionSpec`` from it. Example::

    description = AppDescription.from_dict(json.loads(stdout))
    description.functions["Embedder"].options.enable_memory_snapshot  # True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from coldsnap.wire.cloud_options import cloud_notices
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.image_spec import ImageSpec
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.web import WebEndpoint

FunctionKind = Literal["function", "cls"]
FUNCTION: FunctionKind = "function"
# describe's output key for inline secrets' values: read by ``from_dict``, never
# written by ``to_dict`` (so never stored, shown or hashed into a version).
INLINE_SECRETS = "inline_secrets"
CLS: FunctionKind = "cls"


class DescriptionError(ValueError):
    """The description is malformed; the message says which part."""


@dataclasses.dataclass(frozen=True)
class FunctionDescription:
    """One ``@app.function`` (kind ``function``) or ``@app.cls`` (kind ``cls``)."""

    kind: FunctionKind
    options: FunctionOptions
    methods: tuple[str, ...] = ()  # a class's @method()s
    build_methods: tuple[str, ...] = ()  # a class's @build()s, run at image build time
    image_spec: ImageSpec | None = None  # its own ``image=``; None: the app's image
    web: tuple[WebEndpoint, ...] = ()  # its web endpoints (a class: one per web method)
    # Modal's cloud-only keywords it was given, as shown (wire/cloud_options.py): ignored.
    cloud_options: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "options": self.options.to_dict()}
        if self.image_spec is not None:
            data["image"] = self.image_spec.to_dict()
        if self.web:
            data["web"] = [endpoint.to_dict() for endpoint in self.web]
        if self.cloud_options:
            data["cloud_options"] = dict(self.cloud_options)
        if self.kind == CLS:
            data.update(methods=list(self.methods), build_methods=list(self.build_methods))
        return data

    @classmethod
    def from_dict(cls, tag: str, data: Any, validate: bool = True) -> FunctionDescription:
        if not isinstance(data, dict) or data.get("kind") not in (FUNCTION, CLS):
            raise DescriptionError(f"function {tag!r}: not a function or class description")
        options = data.get("options", {})
        if not isinstance(options, dict):
            raise DescriptionError(f"function {tag!r}: options must be an object")
        return cls(
            kind=FUNCTION if data["kind"] == FUNCTION else CLS,
            options=FunctionOptions.from_dict(options, f"the options of {tag!r}", validate),
            methods=_names(tag, "methods", data.get("methods", [])),
            build_methods=_names(tag, "build_methods", data.get("build_methods", [])),
            image_spec=ImageSpec.from_dict(data["image"]) if "image" in data else None,
            web=_endpoints(tag, data.get("web", [])),
            cloud_options=_strings(tag, "cloud_options", data.get("cloud_options", {})),
        )


@dataclasses.dataclass(frozen=True)
class AppDescription:
    """An app as its file defines it.

    name: ``App(name)`` (a deploy may register it under another name).
    image_hash, image_spec: the app's ``Image`` (``Image.hash``, ``Image.spec``).
    default_image: the app gave no ``image=``: its image is the default (``debian_slim``).
    functions: tag -> function or class.
    entrypoints: the ``@app.local_entrypoint()`` names.
    module: the module name the app file is imported under (``wire.names.module_name_for``).
    """

    name: str
    image_hash: str
    image_spec: ImageSpec
    functions: dict[str, FunctionDescription]
    entrypoints: tuple[str, ...] = ()
    module: str = "app"
    default_image: bool = False
    inline_secrets: dict[str, dict[str, str]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (docs/protocol.md); ``from_dict(to_dict())`` round-trips."""
        image: dict[str, Any] = {"hash": self.image_hash, "spec": self.image_spec.to_dict()}
        if self.default_image:
            image["default"] = True
        return {
            "app": self.name,
            "image": image,
            "functions": {tag: fn.to_dict() for tag, fn in self.functions.items()},
            "entrypoints": list(self.entrypoints),
            "module": self.module,
        }

    @classmethod
    def from_dict(cls, data: Any, validate: bool = True) -> AppDescription:
        """Type a description, checking its shape; DescriptionError says what is wrong.
        ``validate=False`` skips the rules of each function's options (they were
        checked at deploy: a rule added since must not make a stored version unusable)."""
        if not isinstance(data, dict) or not isinstance(data.get("app"), str):
            raise DescriptionError("no coldsnap.App")
        image = data.get("image")
        if not (isinstance(image, dict) and isinstance(image.get("hash"), str)
                and isinstance(image.get("spec"), dict)):
            raise DescriptionError("image must be {'hash': str, 'spec': object}")
        functions = data.get("functions")
        if not isinstance(functions, dict):
            raise DescriptionError("functions must be an object")
        module = data.get("module", "app")
        if not (isinstance(module, str) and module.isidentifier()):
            raise DescriptionError(f"module {module!r} is not a module name")
        return cls(
            name=data["app"],
            image_hash=image["hash"],
            image_spec=ImageSpec.from_dict(image["spec"]),
            functions={str(tag): FunctionDescription.from_dict(str(tag), entry, validate)
                       for tag, entry in functions.items()},
            entrypoints=_names("app", "entrypoints", data.get("entrypoints", [])),
            module=module,
            default_image=image.get("default") is True,
            inline_secrets=_inline_secrets(data.get(INLINE_SECRETS, {})),
        )

    def notices(self) -> list[str]:
        """What a deploy says once about the app's options (cloud-only keywords)."""
        return cloud_notices({tag: fn.cloud_options for tag, fn in self.functions.items()})

    def on_host_by_default(self) -> AppDescription:
        """The same app with the host's root as its default image (``from_host``, plus
        the same steps): for an engine that runs every container on the host."""
        if not self.default_image:
            return self
        spec = ImageSpec(({"op": "from_host"}, *self.image_spec.layers[1:]))
        return dataclasses.replace(self, image_spec=spec, image_hash=spec.hash())

    def without_snapshots(self) -> AppDescription:
        """The same app with every memory snapshot turned off (``deploy --no-snapshot``)."""
        functions = {
            tag: dataclasses.replace(fn, options=dataclasses.replace(
                fn.options, enable_memory_snapshot=False,
                experimental_options={k: v for k, v in fn.options.experimental_options.items()
                                      if k != "enable_gpu_snapshot"}))
            for tag, fn in self.functions.items()
        }
        return dataclasses.replace(self, functions=functions)


def _inline_secrets(value: Any) -> dict[str, dict[str, str]]:
    if not (isinstance(value, dict) and all(
            isinstance(values, dict) and all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in values.items())
            for values in value.values())):
        raise DescriptionError(f"{INLINE_SECRETS} must map ids to dicts of str to str")
    return {str(ref): dict(values) for ref, values in value.items()}


def _endpoints(tag: str, value: Any) -> tuple[WebEndpoint, ...]:
    if not isinstance(value, list):
        raise DescriptionError(f"function {tag!r}: web must be a list of endpoints")
    try:
        return tuple(WebEndpoint.from_dict(entry) for entry in value)
    except (InvalidError, TypeError) as exc:
        raise DescriptionError(f"function {tag!r}: {exc}") from None


def _strings(where: str, field: str, value: Any) -> dict[str, str]:
    if not (isinstance(value, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise DescriptionError(f"function {where!r}: {field} must map names to strings")
    return dict(value)


def _names(where: str, field: str, value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise DescriptionError(f"{where}: {field} must be a list of names")
    return tuple(value)
