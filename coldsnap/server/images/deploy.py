"""Deploy-time image builds: the base image once, plus each class's ``@build`` output.

They are stored with the version (``StoredVersion.built_images``: tag -> BuiltImage),
so containers of that version find their interpreter, layers and env after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from coldsnap.server.environment import search_path
from coldsnap.server.errors import ApiError
from coldsnap.server.images.builder import BuildError, ImageBuilder
from coldsnap.server.images.built import BuiltImage
from coldsnap.wire.description import AppDescription
from coldsnap.wire.errors import DEPLOY_FAILED


def build_images(builder: ImageBuilder, description: AppDescription, source: bytes,
                 filename: str, progress: Callable[[str], None]) -> dict[str, BuiltImage]:
    """tag -> the built image of every function of the app."""
    try:
        # Each image once, however many functions use it: keyed by the spec as data
        # (its hash would read every local file it adds again).
        bases: dict[str, BuiltImage] = {}
        built = {}
        for tag, fn in description.functions.items():
            spec = fn.image_spec or description.image_spec
            same = json.dumps(spec.to_dict(), sort_keys=True)
            if same not in bases:
                bases[same] = base = builder.build(spec, progress)
                if not base.base:  # the host's Python: asked now, not on a boot's way
                    search_path(base.python)
            methods = list(fn.build_methods)
            built[tag] = builder.with_build_output(bases[same], source, tag, methods, progress)
        return built
    except BuildError as exc:
        raise ApiError(DEPLOY_FAILED, f"building the image of {filename} failed, so it was "
                       f"not deployed:\n{exc}") from None
