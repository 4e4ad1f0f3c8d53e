"""A ``Variant`` of a deployed class: its parameter values (``Cls(x=1)``) and option
overrides (``Cls.with_options(cpu=2)``). Each distinct variant gets containers and a
snapshot of its own, as in Modal. The client sends it with a call (field ``variant``);
the server keys the pool and the snapshot by ``key()`` and hands the parameters to
the container (``BootConfig.params``). Example::

    variant = Variant(params={"size": 3}, options={"timeout": 30})
    assert Variant.from_dict(variant.to_dict()).key() == variant.key()
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

# The types a parameter may have (Modal's).
PARAM_TYPES = (int, str, bool, bytes)
_BYTES = "__bytes__"  # JSON has no bytes: {"__bytes__": base64}


@dataclasses.dataclass(frozen=True)
class Variant:
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # to_dict() form

    @property
    def is_default(self) -> bool:
        return not self.params and not self.options

    def key(self) -> str:
        """A short name for this variant (part of pool and snapshot keys); "" by default."""
        if self.is_default:
            return ""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"params": encode_params(self.params), "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Variant:
        """ValueError for a malformed variant."""
        if not data:
            return cls()
        params, options = data.get("params") or {}, data.get("options") or {}
        if not isinstance(params, dict) or not isinstance(options, dict):
            raise ValueError("a variant's params and options must be objects")
        return cls(params=decode_params(params), options=options)


def encode_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: {_BYTES: base64.b64encode(value).decode()} if isinstance(value, bytes)
            else value for name, value in params.items()}


def decode_params(params: dict[str, Any]) -> dict[str, Any]:
    """ValueError for a value of a type parameters can't have."""
    decoded: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, dict) and set(value) == {_BYTES}:
            value = base64.b64decode(value[_BYTES])
        if not isinstance(value, PARAM_TYPES):
            raise ValueError(f"parameter {name!r} is a {type(value).__name__}; parameters "
                             "are int, str, bool or bytes")
        decoded[str(name)] = value
    return decoded


def params_to_env(params: dict[str, Any]) -> str:
    return json.dumps(encode_params(params), sort_keys=True)


def params_from_env(text: str) -> dict[str, Any]:
    return decode_params(json.loads(text)) if text else {}
