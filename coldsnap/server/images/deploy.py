"""Deploy-time image builds: the base image once, plus each class's ``@build`` output.

They are stored with the version (``StoredVersion.built_images``: tag -> BuiltImage),
so containers of that version find their interpreter, layers and env after a restart.
"""

from __future__ import annotations

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
        base = builder.build(description.image_spec, progress)
        search_path(base.python)  # asked now, not on a boot's way (environment.py)
        built = {}
        for tag, fn in description.functions.items():
            methods = list(fn.build_methods)
            image = builder.with_build_output(base, source, tag, methods, progress)
            built[tag] = image
        return built
    except BuildError as exc:
        raise ApiError(DEPLOY_FAILED, f"building the image of {filename} failed, so it was "
                       f"not deployed:\n{exc}") from None
