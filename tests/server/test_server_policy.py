"""Unit tests of the server's policies: snapshot keys after restore failures, an untrusted
control channel, request errors, the engine=auto warning, the container environment."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from coldsnap.engine import SnapshotInfo
from coldsnap.server import daemon
from coldsnap.server.api import HANDLERS, Api, ClientGone, Request
from coldsnap.server.boot import Claim, SnapshotKeys
from coldsnap.server.channel import ControlChannel
from coldsnap.server.daemon import Server
from coldsnap.server.functions import FunctionSpec
from coldsnap.settings import Settings
from coldsnap.wire.description import AppDescription
from coldsnap.wire.framing import ProtocolError, read_message


class StoreEngine:
    """Just the engine calls SnapshotKeys makes: one stored snapshot, failure records."""

    name = "fake"
    host_key = "test-host"

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}

    def lookup(self, key: str) -> SnapshotInfo | None:
        return SnapshotInfo(key, self.host_key, Path("/nonexistent"), 1, 0.1, time.time())

    def mark_failed(self, key: str, reason: str) -> None:
        self.failed[key] = reason

    def failure(self, key: str) -> str | None:
        return self.failed.get(key)


def test_a_transient_restore_failure_pauses_restores_then_retries() -> None:
    engine, now = StoreEngine(), [1000.0]
    keys = SnapshotKeys(engine, clock=lambda: now[0])  # type: ignore[arg-type]
    assert keys.claim("k", 1) is Claim.RESTORE
    keys.mark_transient("k", "restore: criu restore timed out", retry_in_s=300)
    assert engine.failed == {}  # not failed for good: the snapshot is kept
    assert "transient" in (keys.transient_error("k") or "")
    now[0] += 299
    assert keys.claim("k", 1) is Claim.FALLBACK
    now[0] += 2
    assert keys.claim("k", 1) is Claim.RESTORE
    keys.restored("k")
    assert keys.transient_error("k") is None


def test_a_failed_key_stays_failed_until_its_record_is_deleted() -> None:
    engine = StoreEngine()
    keys = SnapshotKeys(engine)  # type: ignore[arg-type]
    keys.mark_failed("k", "restore: corrupt image")
    assert keys.claim("k", 1) is Claim.FALLBACK
    assert engine.failed["k"] == "restore: corrupt image"
    assert keys.failure("k") == "restore: corrupt image"
    engine.failed.clear()  # what the store's delete does
    assert keys.claim("k", 1) is Claim.RESTORE


def _garbage_channel(data: bytes, max_blob: int | None = None) -> Iterator[ControlChannel]:
    r, w = os.pipe()
    os.write(w, data)
    with os.fdopen(w, "wb") as writer, os.fdopen(r, "rb") as reader:
        yield ControlChannel(writer, reader, max_blob)


@pytest.mark.parametrize("data, error", [
    (b"\0\0\0\x05hello", "not JSON"),
    (b"\0\0\0\x02[]", "not an object"),
    (b"\0\0\0\x02\xff\xfe", "not JSON"),
    (b"\xff\xff\xff\xff", "exceeds"),  # refused at once, not after reading 4 GiB
    (b'\0\0\0\x0e{"blob": true}' + (10**6).to_bytes(8, "big"), "exceeds the limit of 1000"),
])
def test_control_channel_refuses_malformed_messages(data: bytes, error: str) -> None:
    for channel in _garbage_channel(data, max_blob=1000):
        with pytest.raises(ProtocolError, match=error):
            channel.recv(5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = Settings(state_dir=tmp_path / "state", engine="none")
    settings.state_dir.mkdir()
    srv = Server(settings)
    yield srv
    srv.db.close()


def _answer(srv: Server, op: str) -> tuple[bool, dict[str, Any] | None]:
    out = io.BytesIO()
    keep = srv._answer({"op": op, "token": srv.token}, None, out)
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
                               busy=lambda: False)
    reply, _ = Api(platform, warning).ping(Request({"op": "ping"}, None, io.BytesIO()))  # type: ignore[arg-type]
    assert reply["warning"] == warning


def function_spec(options: dict[str, Any], layers: list[dict[str, Any]] | None = None,
                  source: bytes = b"") -> FunctionSpec:
    """Function ``f`` of app ``app`` with these options, as a deploy would describe it."""
    description = AppDescription.from_dict({
        "app": "app",
        "image": {"hash": "", "spec": {"layers": [{"op": "from_host"}, *(layers or [])]}},
        "functions": {"f": {"kind": "function", "options": options}}})
    return FunctionSpec.from_description("app", "v" * 64, "f", description, source, None)


def test_containers_get_an_allow_listed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    fn = function_spec({"env": {"FROM_OPTIONS": "2"}},
                       layers=[{"op": "env", "vars": {"FROM_IMAGE": "1"}}])
    env = fn.container_env("cs-1", snapshot=False)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert not any(k.startswith("COLDSNAP_") and k not in (
        "COLDSNAP_APP_FILE", "COLDSNAP_TAG", "COLDSNAP_SNAPSHOT", "COLDSNAP_CONTAINER_ID",
        "COLDSNAP_APP_NAME")
        for k in env)
    assert env["PATH"] == os.environ["PATH"] and env["LC_ALL"] == "C.UTF-8"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert (env["FROM_IMAGE"], env["FROM_OPTIONS"]) == ("1", "2")


def test_gpu_snapshot_functions_keep_the_gpu_visible_in_the_snapshot_phase() -> None:
    hidden = function_spec({"enable_memory_snapshot": True, "gpu": "any"})
    kept = function_spec({"enable_memory_snapshot": True, "gpu": "any",
                          "experimental_options": {"enable_gpu_snapshot": True}})
    hiding = hidden.container_env("cs-1", snapshot=True)
    assert hiding["CUDA_VISIBLE_DEVICES"] == "" and "COLDSNAP_GPU_SNAPSHOT" not in hiding
    assert set(hidden.resume_env()) == {"CUDA_VISIBLE_DEVICES", "PYTORCH_NVML_BASED_CUDA_CHECK"}
    keeping = kept.container_env("cs-1", snapshot=True)
    assert keeping["COLDSNAP_GPU_SNAPSHOT"] == "1"
    assert keeping.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in keeping
    assert kept.resume_env() == {}


def test_resume_gives_back_the_image_env_the_snapshot_phase_hid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fn = function_spec({"enable_memory_snapshot": True, "gpu": "any"},
                       layers=[{"op": "env", "vars": {"CUDA_VISIBLE_DEVICES": "1"}}])
    assert fn.container_env("cs-1", snapshot=True)["CUDA_VISIBLE_DEVICES"] == ""
    assert fn.resume_env()["CUDA_VISIBLE_DEVICES"] == "1"  # the image's, not the host's
    assert fn.container_env("cs-1", snapshot=False)["CUDA_VISIBLE_DEVICES"] == "1"
