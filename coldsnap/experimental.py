"""``coldsnap.experimental``: Modal's ``modal.experimental`` names coldsnap implements.

None yet: each of Modal's experimental names raises
``coldsnap.exception.UnimplementedError`` naming it, so a ported app learns what
is missing at the line that uses it. Example::

    import coldsnap.experimental
    coldsnap.experimental.stop_fetching_inputs()  # UnimplementedError: ... not supported
"""

from __future__ import annotations

from typing import Any

from coldsnap.unsupported import not_supported

__all__: list[str] = []

# ``modal.experimental``'s public names (Modal's reference documentation).
MODAL_EXPERIMENTAL_NAMES = frozenset({
    "stop_fetching_inputs", "get_local_input_concurrency", "set_local_input_concurrency",
    "clustered", "get_cluster_info", "ClusterInfo", "raw_dockerfile_image",
    "raw_registry_image", "image_import", "ipython", "notebook", "flash_forward",
    "flash_get_containers", "http_server", "enable_memory_snapshot",
})


def __getattr__(name: str) -> Any:
    if name in MODAL_EXPERIMENTAL_NAMES and name not in __all__:
        not_supported(f"modal.experimental.{name} (coldsnap.experimental.{name})")
    raise AttributeError(f"module 'coldsnap.experimental' has no attribute {name!r}")
