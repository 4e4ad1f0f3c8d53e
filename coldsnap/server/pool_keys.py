"""``Cls.with_concurrency``'s override of a class's concurrency settings, as the server
sees it: read from a call request, a pool of its own (its key), its FunctionSpec."""

from __future__ import annotations

import dataclasses
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.wire.errors import BAD_REQUEST, InvalidError
from coldsnap.wire.options import FunctionOptions

# (max_inputs, target_inputs)
Concurrency = tuple[int, int | None]


def concurrency_override(header: dict[str, Any]) -> Concurrency | None:
    """A call's ``max_inputs``/``target_inputs`` fields; None when it has none;
    ``bad_request`` naming what is wrong."""
    if header.get("max_inputs") is None:
        return None
    max_inputs, target_inputs = header.get("max_inputs"), header.get("target_inputs")
    try:
        FunctionOptions().with_concurrency(max_inputs, target_inputs,  # type: ignore[arg-type]
                                           where="with_concurrency()")
    except InvalidError as exc:
        raise ApiError(BAD_REQUEST, str(exc)) from None
    return max_inputs, target_inputs  # type: ignore[return-value]


def pool_tag(tag: str, concurrency: Concurrency | None) -> str:
    """The tag part of a pool's key: calls with an override share a pool of their own."""
    if concurrency is None:
        return tag
    return f"{tag}[max_inputs={concurrency[0]},target_inputs={concurrency[1]}]"


def with_override(spec: FunctionSpec, concurrency: Concurrency | None) -> FunctionSpec:
    """``spec`` with the override's settings (same version, same snapshot key: how many
    inputs run at once changes nothing in the snapshot)."""
    if concurrency is None:
        return spec
    options = spec.options.with_concurrency(*concurrency)
    return dataclasses.replace(spec, options=options)
