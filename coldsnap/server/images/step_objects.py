"""The secrets and volumes of an image's ``run_function``/``run_commands`` step.

A step's record names them (``secrets``: secret names; ``volumes``: mount path ->
volume reference), so the layer's hash, and with it the build cache, never
depends on a secret's value or a volume's files, as on Modal. The build
container gets the values as environment variables and the volumes mounted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coldsnap.server.errors import ApiError
from coldsnap.server.images.steps import BuildError
from coldsnap.server.secrets import SecretStore
from coldsnap.server.volumes import VolumeStore
from coldsnap.settings import Settings
from coldsnap.wire.mounts import SecretRef, VolumeRef


def step_env(settings: Settings, layer: dict[str, Any]) -> dict[str, str]:
    """The variables of the step's secrets, read now."""
    refs = tuple(SecretRef(str(name)) for name in layer.get("secrets") or ())
    try:
        return SecretStore(settings).env_for("", refs)
    except ApiError as exc:
        raise BuildError(f"Image.{layer['op']}(secrets=...): {exc.message}") from None


def step_volumes(settings: Settings, layer: dict[str, Any]) -> dict[str, Path]:
    """Mount path -> the host dir of each of the step's volumes (made if they may be)."""
    refs = {path: VolumeRef.from_dict(ref) for path, ref in (layer.get("volumes") or {}).items()}
    store = VolumeStore(settings)
    try:
        store.ensure(list(refs.values()))
        return {path: store.path(ref.name) for path, ref in refs.items()}
    except ApiError as exc:
        raise BuildError(f"Image.{layer['op']}(volumes=...): {exc.message}") from None
