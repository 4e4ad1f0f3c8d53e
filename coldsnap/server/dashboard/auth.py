"""Who may see the dashboard: holders of the server token, as a browser session.

Two ways in, both ending in an HttpOnly cookie that names a session:
``coldsnap dashboard`` asks the server for a one-time login code (``LoginCodes``)
and prints ``/dashboard/login/<code>``; or the login page takes the server token
itself (the file ``COLDSNAP_STATE_DIR/token``). Codes and sessions live in
memory: a restarted server asks for a new login.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable

COOKIE = "coldsnap_dashboard"
CODE_TTL_S = 300.0  # a printed login URL works once, within five minutes
SESSION_TTL_S = 12 * 3600.0


class Expiring:
    """Random names that stay valid until used up or out of time; thread-safe (the API
    thread adds codes, the gateway's thread takes them)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def new(self) -> str:
        name = secrets.token_urlsafe(24)
        with self._lock:
            now = self._clock()
            self._until = {k: t for k, t in self._until.items() if t > now}  # drop stale
            self._until[name] = now + self.ttl_s
        return name

    def valid(self, name: str | None) -> bool:
        with self._lock:
            until = self._until.get(name or "")
            return until is not None and until > self._clock()

    def take(self, name: str) -> bool:
        """True once for a valid name, which is then gone (a one-time code)."""
        with self._lock:
            until = self._until.pop(name, None)
            return until is not None and until > self._clock()

    def drop(self, name: str | None) -> None:
        with self._lock:
            self._until.pop(name or "", None)


class DashboardAuth:
    """The server token, the one-time login codes and the browser sessions."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.base_url = ""  # where the dashboard is served: the gateway's, or its own address
        self.codes = Expiring(CODE_TTL_S)
        self.sessions = Expiring(SESSION_TTL_S)

    def login_code(self) -> str:
        """A code for ``/dashboard/login/<code>`` (the ``dashboard_login`` op)."""
        return self.codes.new()

    def session_for_code(self, code: str) -> str | None:
        return self.sessions.new() if self.codes.take(code) else None

    def session_for_token(self, token: str) -> str | None:
        ok = hmac.compare_digest(token.strip().encode(), self.token.encode())
        return self.sessions.new() if ok else None

    def signed_in(self, session: str | None) -> bool:
        return self.sessions.valid(session)
