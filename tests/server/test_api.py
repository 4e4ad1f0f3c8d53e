"""server/api.py: errors in handlers, clients that hang up, the engine warning in ping."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from coldsnap.server import daemon
from coldsnap.server.api import HANDLERS, Api, ClientGone, Request
from coldsnap.server.daemon import Server
from coldsnap.settings import Settings
from coldsnap.wire.framing import read_message, write_message


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = Settings(state_dir=tmp_path / "state", engine="none")
    settings.state_dir.mkdir()
    srv = Server(settings)
    yield srv
    srv.db.close()


def _answer(srv: Server, op: str) -> tuple[bool, dict[str, Any] | None]:
    """Whether the connection stays open after one request, and the reply, if any."""
    request, out = io.BytesIO(), io.BytesIO()
    write_message(request, {"op": op, "token": srv.token})
    request.seek(0)
    keep = srv.connections._serve_one(request, out)
    out.seek(0)
    return keep, (read_message(out)[0] if out.getvalue() else None)


def test_an_os_error_in_a_handler_is_an_internal_error(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(api: Api, req: Request) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(HANDLERS, "ping", disk_full)
    keep, reply = _answer(server, "ping")
    assert keep and reply is not None and reply["error"]["kind"] == "internal"
    assert "No space left on device" in reply["error"]["message"]


def test_a_client_that_hung_up_closes_the_connection_quietly(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hung_up(api: Api, req: Request) -> None:
        raise ClientGone("broken pipe")

    monkeypatch.setitem(HANDLERS, "ping", hung_up)
    assert _answer(server, "ping") == (False, None)


def test_request_send_turns_a_broken_pipe_into_client_gone() -> None:
    class Gone(io.BytesIO):
        def write(self, data: Any) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(ClientGone):
        Request({"op": "logs"}, None, Gone()).send({"ok": True})


def test_engine_auto_falling_back_to_none_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from coldsnap.engine import doctor

    monkeypatch.setattr(doctor, "run_checks", lambda settings: [
        doctor.Check("criu", False, "not found at /usr/sbin/criu", "run install-criu.sh"),
        doctor.Check("overlayfs", True, "available"),
        doctor.Check("userfaultfd (lazy restore)", False, "no", needed=False),
    ])
    warning = daemon._engine_warning(Settings(engine="auto"), "none")
    assert warning is not None and "NOT isolated" in warning
    assert "criu: not found at /usr/sbin/criu (fix: run install-criu.sh)" in warning
    assert "overlayfs" not in warning and "userfaultfd" not in warning
    assert daemon._engine_warning(Settings(engine="none"), "none") is None
    assert daemon._engine_warning(Settings(engine="auto"), "criu") is None
    platform = SimpleNamespace(engine=SimpleNamespace(name="none", host_key="none"),
                               busy=lambda: False, deploys=SimpleNamespace(web_base=None))
    reply, _ = Api(platform, warning).ping(Request({"op": "ping"}, None, io.BytesIO()))  # type: ignore[arg-type]
    assert reply["warning"] == warning
