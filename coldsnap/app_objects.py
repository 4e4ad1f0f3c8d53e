"""An app's volumes and secrets: ``volumes=``/``secrets=`` of ``App``, ``@app.function``
and ``@app.cls`` turned into the references functions' options carry (wire/mounts.py).

As on Modal, a function gets the app's secrets and then its own (a later secret
wins a key both have), and the app's volumes plus its own (its own win a mount
path both name). ``Secret.from_dict``/``from_dotenv`` secrets get ids
``inline-0``, ``inline-1``, ... in the order the app first uses them; their
values go to the server beside the description (``inline_values``), never in it.
"""

from __future__ import annotations

import re
import sys
from pathlib import PurePath
from typing import Any

from coldsnap.secret import Secret
from coldsnap.volume import Volume
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.mounts import (
    INLINE_PREFIX,
    SecretRef,
    VolumeRef,
    secret_problems,
    volume_problems,
)
from coldsnap.wire.names import is_app_name


class AppObjects:
    """The volumes and secrets of one app: its own, and its inline secrets' ids."""

    def __init__(self, volumes: object = None, secrets: object = None) -> None:
        self._inline: dict[int, tuple[str, Secret]] = {}  # id(Secret) -> (ref, Secret)
        self.volumes = self.volume_refs("App()", volumes)
        self.secrets = self.secret_refs("App()", secrets)

    def volume_refs(self, where: str, volumes: object) -> dict[str, VolumeRef]:
        if volumes is None:
            return {}
        if not isinstance(volumes, dict):
            raise InvalidError(f"{where}: volumes= takes a dict of mount path to "
                               f'coldsnap.Volume, e.g. {{"/data": vol}}; not {volumes!r}')
        refs = {}
        for path, volume in volumes.items():
            if not isinstance(volume, Volume):
                raise InvalidError(
                    f"{where}: volumes[{path!r}] is {volume!r}, not a coldsnap.Volume; "
                    f"use coldsnap.Volume.from_name('my-volume', create_if_missing=True)")
            refs[path] = volume.ref()
        return refs

    def secret_refs(self, where: str, secrets: object) -> tuple[SecretRef, ...]:
        if secrets is None:
            return ()
        if not isinstance(secrets, list | tuple):
            raise InvalidError(f"{where}: secrets= takes a list of coldsnap.Secret, "
                               f"not {type(secrets).__name__}")
        refs = []
        for secret in secrets:
            if not isinstance(secret, Secret):
                raise InvalidError(
                    f"{where}: secrets= holds {secret!r}, not a coldsnap.Secret; use "
                    "coldsnap.Secret.from_name('my-secret') or Secret.from_dict({...})")
            refs.append(SecretRef(self._inline_ref(secret) if secret.inline
                                  else str(secret.name)))
        return tuple(refs)

    def _inline_ref(self, secret: Secret) -> str:
        known = self._inline.get(id(secret))
        if known is None:
            known = (f"{INLINE_PREFIX}{len(self._inline)}", secret)
            self._inline[id(secret)] = known
        return known[0]

    def options_for(self, where: str, options: dict[str, Any]) -> dict[str, Any]:
        """A decorator's keywords with ``volumes``/``secrets`` as the app's plus its own."""
        volumes = {**self.volumes, **self.volume_refs(where, options.pop("volumes", None))}
        secrets = (*self.secrets, *self.secret_refs(where, options.pop("secrets", None)))
        return {**options, **({"volumes": volumes} if volumes else {}),
                **({"secrets": secrets} if secrets else {})}

    def inline_values(self) -> dict[str, dict[str, str]]:
        """The inline secrets' values by id, read now (at describe time)."""
        return {ref: secret.values() for ref, secret in self._inline.values()}


def default_app_name(depth: int = 2) -> str:
    """``App()`` without a name: the name of the file that made it (``squares.py`` ->
    ``squares``), made to fit the app-name rule; ``app`` if there is none."""
    frame = sys._getframe(depth)
    filename = frame.f_globals.get("__file__")
    stem = PurePath(filename).stem if isinstance(filename, str) else ""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-")[:64]
    return name if is_app_name(name) else "app"


def override_refs(where: str, options: dict[str, Any]) -> dict[str, Any]:
    """``with_options(volumes=..., secrets=...)``: Volumes and Secrets as the references
    the options carry. Only named secrets: an inline one's values went to the server with
    the deploy, and a new one here would never reach it."""
    objects = AppObjects()
    converted = dict(options)
    if "volumes" in options:
        converted["volumes"] = objects.volume_refs(where, options["volumes"])
    if "secrets" in options:
        converted["secrets"] = objects.secret_refs(where, options["secrets"])
        if objects.inline_values():
            raise InvalidError(f"{where}: secrets= takes named secrets here "
                               "(Secret.from_name): a Secret.from_dict/from_dotenv secret "
                               "reaches the server only with a deploy. Pass it to "
                               "@app.function(secrets=[...]) instead, or create a named one "
                               "with `coldsnap secret create NAME KEY=VALUE ...`")
    return converted


def step_objects(where: str, secrets: object, volumes: object) -> dict[str, Any]:
    """An image step's ``secrets``/``volumes`` as its record holds them: secret names and
    volume references, only when given (so other steps' hashes stay as they were). A
    step's record is hashed and stored with the image, so inline secrets can't go in."""
    objects = AppObjects()
    refs = objects.secret_refs(where, list(secrets) if isinstance(secrets, tuple) else secrets)
    if objects.inline_values():
        raise InvalidError(f"{where}(secrets=...) takes named secrets only: the step's record "
                           "is stored with the image. Create one with `coldsnap secret create "
                           "NAME KEY=VALUE ...` and pass coldsnap.Secret.from_name(NAME)")
    mounts = objects.volume_refs(where, volumes)
    problems = [*volume_problems(mounts), *secret_problems(refs)]
    if problems:
        raise InvalidError(f"{where}: " + "; ".join(problems) + ".")
    record: dict[str, Any] = {}
    if refs:
        record["secrets"] = [ref.name for ref in refs]
    if mounts:
        record["volumes"] = {path: ref.to_dict() for path, ref in mounts.items()}
    return record
