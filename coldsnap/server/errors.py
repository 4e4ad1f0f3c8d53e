"""The server's replies: their type, and the error it answers with instead of a result
(kinds: ``coldsnap.wire.errors``)."""

from __future__ import annotations

from typing import Any

from coldsnap.wire.errors import error_header

# A reply as the server sends it: the header, and the blob (a result, an exception).
Reply = tuple[dict[str, Any], bytes | None]


class ApiError(Exception):
    """An answer the server gives instead of a result; ``blob`` may carry an exception."""

    def __init__(self, kind: str, message: str, blob: bytes | None = None,
                 notes: list[str] | None = None, traceback: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.blob = blob
        self.notes = notes or []  # added to the user's exception the blob carries
        # The blob's traceback as text, for the app's log where nobody reads the result
        # (a scheduled run); the server never unpickles the blob.
        self.traceback = traceback

    def to_header(self) -> dict[str, Any]:
        return error_header(self.kind, self.message, self.notes)
