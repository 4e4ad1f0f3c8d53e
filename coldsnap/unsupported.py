"""Modal's public names that coldsnap does not have yet, and the error that says so.

A Modal app ported with ``import coldsnap as modal`` that reaches for one of them
gets ``coldsnap.exception.UnimplementedError`` naming it, not a bare
``AttributeError``; a name Modal does not have either stays a plain
``AttributeError`` (a typo, or a library probing with ``hasattr``). Example::

    modal.Tunnel   # UnimplementedError: modal.Tunnel is not supported by coldsnap yet ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from coldsnap.wire.errors import UnimplementedError

# ``modal.__all__`` (Modal's reference documentation, the top-level module).
MODAL_NAMES = frozenset({
    "App", "Client", "CloudBucketMount", "Cls", "ClusterInfo", "Cron", "Dict", "Error",
    "FilePatternMatcher", "Function", "FunctionCall", "Image", "NetworkFileSystem",
    "Period", "Proxy", "Queue", "Retries", "Sandbox", "SandboxSnapshot",
    "SchedulerPlacement", "Secret", "Server", "Stub", "Tunnel", "Volume", "asgi_app",
    "batched", "build", "concurrent", "current_function_call_id", "current_input_id",
    "enable_output", "enter", "exit", "fastapi_endpoint", "forward", "get_cluster_info",
    "interact", "is_local", "method", "parameter", "web_endpoint", "web_server",
    "wsgi_app", "exception", "experimental", "io_streams", "config", "runner",
    "gpu", "file_io", "partial_function", "volume", "secret", "functions", "cls",
    "queue", "dict",
})
# Attributes of ``modal.App``, ``modal.Function``, ``modal.Cls`` and ``modal.FunctionCall``
# (Modal's reference).
MODAL_APP_ATTRIBUTES = frozenset({
    "name", "is_interactive", "app_id", "description", "lookup", "from_name", "set_description",
    "image", "run", "deploy", "registered_functions", "registered_classes",
    "registered_entrypoints", "registered_web_endpoints", "local_entrypoint", "function",
    "cls", "include", "get_tags", "set_tags", "interactive", "spawn_sandbox",
})
MODAL_FUNCTION_ATTRIBUTES = frozenset({
    "keep_warm", "update_autoscaler", "from_name", "lookup", "object_id", "is_generator",
    "cluster_size", "remote", "remote_gen", "local", "spawn", "get_raw_f",
    "get_current_stats", "get_web_url", "web_url", "map", "starmap", "for_each",
    "spawn_map", "with_options", "with_concurrency", "with_batching", "hydrate",
    "info", "get_build_def", "experimental_spawn", "get_metadata",
})
MODAL_CLS_ATTRIBUTES = frozenset({
    "from_name", "lookup", "with_options", "with_concurrency", "with_batching",
    "hydrate", "object_id", "get_methods", "get_flash_url",
})
MODAL_FUNCTION_CALL_ATTRIBUTES = frozenset({
    "hydrate", "get", "get_call_graph", "cancel", "from_id", "gather", "object_id",
})


# Class name -> (as a user writes it, Modal's attributes): for ``ModalClass``.
_CLASS_ATTRIBUTES = {
    "App": ("coldsnap.App", MODAL_APP_ATTRIBUTES),
    "Function": ("coldsnap.Function", MODAL_FUNCTION_ATTRIBUTES),
    "Cls": ("coldsnap.Cls", MODAL_CLS_ATTRIBUTES),
    "FunctionCall": ("coldsnap.FunctionCall", MODAL_FUNCTION_CALL_ATTRIBUTES),
}


class ModalClass(type):
    """The metaclass of ``App``, ``Function``, ``Cls`` and ``FunctionCall``: Modal's class
    attributes they lack (``coldsnap.App.lookup``) raise ``not_supported``, as on their
    instances."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__") or cls.__name__ not in _CLASS_ATTRIBUTES:
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")
        owner, names = _CLASS_ATTRIBUTES[cls.__name__]
        missing_attribute(owner, name, names)


def not_supported(qualname: str) -> NoReturn:
    """Raise the error for a Modal API coldsnap lacks (``qualname``: as a user writes it)."""
    raise UnimplementedError(
        f"{qualname} is part of Modal's API but is not supported by coldsnap yet. "
        "See docs/modal-compatibility.md for what coldsnap has, or remove this use")


def module_getattr(module: str, defined: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__``: Modal's names the module lacks raise ``not_supported``."""
    have = frozenset(defined)

    def __getattr__(name: str) -> Any:
        if name in MODAL_NAMES and name not in have:
            not_supported(f"modal.{name} (coldsnap.{name})")
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def missing_attribute(owner: str, name: str, modal_names: frozenset[str]) -> NoReturn:
    """For a handle's ``__getattr__``: Modal's attribute names get ``not_supported``."""
    if name in modal_names:
        not_supported(f"{owner}.{name}")
    raise AttributeError(f"{owner} has no attribute {name!r}")
