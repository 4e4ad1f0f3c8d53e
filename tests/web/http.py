"""A plain HTTP client for the web tests: requests to the gateway with the Host
header of an endpoint (no DNS needed for ``*.localhost``)."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.conftest import ServerHandle


class Gateway:
    def __init__(self, server: ServerHandle, app: str) -> None:
        base = server.http
        self.host, _, port = base.partition("://")[2].rpartition(":")
        self.port = int(port)
        self.app = app

    def connection(self, timeout: float = 120.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def host_of(self, label: str) -> str:
        return f"{self.app}--{label}.localhost:{self.port}"

    def request(self, label: str, method: str = "GET", path: str = "/", body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 120.0
                ) -> tuple[int, bytes]:
        """(status, body) of one request to endpoint ``label``."""
        conn = self.connection(timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            sent = {"Host": self.host_of(label), **(headers or {})}
            if data is not None:
                sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()
