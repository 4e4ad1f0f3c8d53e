"""What a deploy does for an app's volumes and secrets before its version is stored.

Volumes the functions mount must exist (or are made, with ``create_if_missing``),
named secrets must exist, and the app's inline secrets' values replace those of
its last deploy. A missing one fails the deploy with the command that makes it.
"""

from __future__ import annotations

from coldsnap.server.errors import ApiError
from coldsnap.server.secrets import SecretStore
from coldsnap.server.volumes import VolumeStore
from coldsnap.settings import Settings
from coldsnap.wire.description import AppDescription
from coldsnap.wire.errors import DEPLOY_FAILED
from coldsnap.wire.options import FunctionOptions


def prepare_objects(settings: Settings, app: str, description: AppDescription) -> None:
    """Check and create ``description``'s volumes and secrets for app ``app``."""
    volumes = [ref for fn in description.functions.values()
               for ref in fn.options.volumes.values()]
    secrets = SecretStore(settings)
    try:
        VolumeStore(settings).ensure(volumes)
        for fn in description.functions.values():
            for ref in fn.options.secrets:
                if not ref.inline:
                    secrets.values(ref.name)  # raises NOT_FOUND naming the fix
    except ApiError as exc:
        raise ApiError(DEPLOY_FAILED, f"can't deploy app {app!r}: {exc.message}") from None
    secrets.put_inline(app, description.inline_secrets)


def prepare_variant_volumes(settings: Settings, options: FunctionOptions) -> None:
    """``with_options(volumes=...)``: its volumes, made now if they may be (a deploy
    never saw them); a missing one that may not fails the call, naming the fix."""
    VolumeStore(settings).ensure(list(options.volumes.values()))
