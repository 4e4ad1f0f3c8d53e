"""The server's token: 32 random bytes in a 0600 file; every request carries it."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path


def ensure_token(path: Path) -> str:
    """Read the token at ``path``, creating it (mode 0600) if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # tighten a token someone loosened
        return read_token(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return read_token(path)


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise PermissionError(
            f"can't read the coldsnap token at {path}: {exc.strerror}. Run as the user "
            "that started the server, or point COLDSNAP_STATE_DIR at your own state dir."
        ) from exc
    if not token:
        raise PermissionError(f"the coldsnap token file {path} is empty; delete it and "
                              "restart the server to make a new one")
    return token


def token_matches(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())
