"""A boot's volumes and secrets, read from the server's stores when the boot needs them.

Secrets are read once per boot, so a restored container gets the values of
its restore (``resume``), not those of its snapshot; a snapshot's labels name
the secrets' keys it was made with (names, never values), so a key removed
since is unset after a restore. A volume or secret removed since the deploy
fails the boot with the command that makes it again.
"""

from __future__ import annotations

from pathlib import Path

from coldsnap.server.errors import ApiError
from coldsnap.server.functions import FunctionSpec
from coldsnap.server.secrets import SecretStore
from coldsnap.server.volumes import VolumeStore
from coldsnap.server.worker import BootFailed
from coldsnap.settings import Settings

SECRET_KEYS_LABEL = "secret_keys"


class BootObjects:
    def __init__(self, settings: Settings, fn: FunctionSpec) -> None:
        self.settings = settings
        self.fn = fn
        self._secrets: dict[str, str] | None = None

    def secrets(self) -> dict[str, str]:
        """The function's secrets' variables (read once per boot)."""
        if self._secrets is None:
            try:
                self._secrets = SecretStore(self.settings).env_for(self.fn.app,
                                                                   self.fn.options.secrets)
            except ApiError as exc:
                raise BootFailed(f"{self.fn.label}: {exc.message}") from None
        return self._secrets

    def snapshot_labels(self) -> dict[str, str]:
        """What a snapshot's metadata keeps of the secrets: their keys' names."""
        keys = ",".join(sorted(self.secrets()))
        return {SECRET_KEYS_LABEL: keys} if keys else {}

    def resume_env(self, labels: dict[str, str]) -> dict[str, str | None]:
        """``resume``'s env: the secrets' values of now, and None (unset) for a key the
        snapshot had that no secret, ``env=`` or image sets any more."""
        now = self.fn.user_env(self.secrets())
        gone = {key: None for key in labels.get(SECRET_KEYS_LABEL, "").split(",")
                if key and key not in now}
        return {**gone, **self.fn.resume_env(self.secrets())}

    def volumes(self) -> dict[str, Path]:
        """Mount path -> the volume's host directory."""
        store = VolumeStore(self.settings)
        try:
            return {path: store.path(ref.name) for path, ref in self.fn.options.volumes.items()}
        except ApiError as exc:
            raise BootFailed(f"{self.fn.label}: {exc.message}") from None
