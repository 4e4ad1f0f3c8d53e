"""The errors the server answers with: a kind a client can branch on, and a message."""

from __future__ import annotations

from typing import Any

# Kinds a client sees in ``{"ok": false, "error": {"kind": ..., "message": ...}}``.
BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
TOO_LARGE = "too_large"
DEPLOY_FAILED = "deploy_failed"
REMOTE = "remote"  # user code raised; the exception travels as the blob
BOOT_FAILED = "boot_failed"
CONTAINER_DIED = "container_died"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"


class ApiError(Exception):
    """An answer the server gives instead of a result; ``blob`` may carry an exception."""

    def __init__(self, kind: str, message: str, blob: bytes | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.blob = blob

    def to_header(self) -> dict[str, Any]:
        return {"ok": False, "error": {"kind": self.kind, "message": self.message}}
