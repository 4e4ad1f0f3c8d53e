"""A class's variants on the server: ``Cls(x=1)`` and ``Cls.with_options(...)`` calls
run in a pool of their own, whose spec has the variant's options and parameters and
whose snapshot key names the variant (wire/variant.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.wire.description import CLS
from coldsnap.wire.errors import BAD_REQUEST, InvalidError
from coldsnap.wire.options import FunctionOptions
from coldsnap.wire.variant import Variant


def parse_variant(data: dict[str, Any] | None) -> Variant:
    """A call's ``variant`` field; bad_request when malformed."""
    try:
        return Variant.from_dict(data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ApiError(BAD_REQUEST, f"the call's variant (a class's parameters and options) "
                       f"is malformed: {exc}") from None


def variant_options(spec: FunctionSpec, variant: Variant) -> FunctionOptions:
    """The spec's options with the variant's overrides; bad_request naming the problem."""
    if variant.is_default:
        return spec.options
    if spec.kind != CLS and variant.params:  # a function's with_options() is fine
        raise ApiError(BAD_REQUEST, f"{spec.label} is a function: parameters are for "
                       "classes (@app.cls)")
    try:
        return FunctionOptions.from_dict({**spec.options.to_dict(), **variant.options},
                                         f"{spec.tag}.with_options()")
    except (InvalidError, TypeError) as exc:
        raise ApiError(BAD_REQUEST, str(exc)) from None


def with_variant(spec: FunctionSpec, variant: Variant) -> FunctionSpec:
    if variant.is_default:
        return spec
    return dataclasses.replace(spec, options=variant_options(spec, variant),
                               params=variant.params, variant=variant.key(),
                               variant_data=variant.to_dict())
