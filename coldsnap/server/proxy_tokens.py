"""Proxy-auth tokens: what ``requires_proxy_auth=True`` endpoints ask of a request.

A token is a key (``wk-...``, shown by ``coldsnap token ls``) and a secret
(``ws-...``, shown once, at ``coldsnap token create``). Requests send them as
``Coldsnap-Key`` and ``Coldsnap-Secret`` headers (Modal's ``Modal-Key`` /
``Modal-Secret``). The state dir keeps a sha256 of each secret, in a 0600 file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any


class ProxyTokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._tokens: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):  # damaged: no token is valid until one is made
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._tokens, f)
        os.replace(tmp, self.path)

    def create(self, name: str = "") -> tuple[str, str]:
        """A new token: (key, secret). The secret is not kept, only its hash."""
        key, secret = "wk-" + secrets.token_hex(8), "ws-" + secrets.token_hex(16)
        with self._lock:
            self._tokens[key] = {"sha256": _digest(secret), "name": name,
                                 "created_at": time.time()}
            self._save()
        return key, secret

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"key": key, "name": entry.get("name", ""),
                     "created_at": entry.get("created_at")}
                    for key, entry in sorted(self._tokens.items())]

    def remove(self, key: str) -> bool:
        with self._lock:
            if self._tokens.pop(key, None) is None:
                return False
            self._save()
            return True

    def check(self, key: str | None, secret: str | None) -> bool:
        """True when ``key`` names a token whose secret is ``secret``."""
        if not key or not secret:
            return False
        entry = self._tokens.get(key)
        return entry is not None and hmac.compare_digest(entry.get("sha256", ""),
                                                         _digest(secret))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
