"""A from_host() container can't read the host's private dirs nor any coldsnap
server's, yet reads what the runtime needs; a `none` server's container, which sees
the host, reads the very same files (the probe works)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine.masks import SERVER_REGISTRY, runtime_paths
from tests.conftest import APPS, ServerHandle
from tests.isolation.conftest import KINDS, call_probe


@pytest.fixture(scope="module")
def host_secrets() -> Iterator[dict[str, Path]]:
    """A root-only file in /root and a file in the host's /tmp."""
    name = f"cs-isolation-{uuid.uuid4().hex[:8]}"
    secrets = {"root": Path("/root") / name, "tmp": Path("/tmp") / name}
    for path in secrets.values():
        path.write_text("host secret")
        path.chmod(0o600)
    yield secrets
    for path in secrets.values():
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("kind", KINDS)
def test_home_tmp_and_var_lib_of_the_host_are_hidden(
    probe_server: ServerHandle, host_secrets: dict[str, Path], kind: str
) -> None:
    for path in host_secrets.values():
        assert path.read_text() == "host secret"  # there on the host
        assert call_probe(probe_server, kind, "read", str(path)) == {"error": "ENOENT"}
    assert call_probe(probe_server, kind, "listdir", "/home") == {"entries": []}
    # What stays: the directories on the way to what the runtime reads, nothing else.
    visible = runtime_paths(probe_server.settings.images)
    for hidden in ("/root", "/tmp", "/var/lib"):
        wanted = sorted({p[len(hidden) + 1:].split("/")[0] for p in visible
                         if p.startswith(hidden + "/")})
        entries = call_probe(probe_server, kind, "listdir", hidden)["entries"]
        assert [e for e in entries if e != "written-by-the-container"] == wanted, hidden
    assert "ID=" in call_probe(probe_server, kind, "read", "/etc/os-release")["data"]
    assert call_probe(probe_server, kind, "read", "/etc/shadow") == {"error": "ENOENT"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_container_has_a_private_tmp_it_can_write(
    probe_server: ServerHandle, kind: str
) -> None:
    assert call_probe(probe_server, kind, "own_tmp", kind) == {"data": kind}
    assert not Path("/tmp/written-by-the-container").exists()  # not the host's /tmp


def test_the_same_probe_reads_the_host_where_the_host_is_visible(
    server_factory: type[ServerHandle], host_secrets: dict[str, Path]
) -> None:
    server = server_factory("none").start()
    server.cli("deploy", str(APPS / "isolation_probe.py"))
    for path in host_secrets.values():
        assert call_probe(server, "fresh", "read", str(path)) == {"data": "host secret"}


def test_another_servers_state_is_hidden_from_this_servers_containers(
    probe_server: ServerHandle, server_factory: type[ServerHandle]
) -> None:
    # Outside the dirs hidden anyway, so only the server registry can hide it.
    base = Path(tempfile.mkdtemp(prefix="cs-iso-", dir="/run"))
    other = None
    try:
        other = server_factory("criu", env={"COLDSNAP_STATE_DIR": str(base / "state")}).start()
        token = other.settings.token_path
        assert token.read_text()  # the host reads it
        (base / "beside.txt").write_text("not coldsnap's")
        registered = "".join(p.read_text() for p in SERVER_REGISTRY.glob("*.json"))
        assert str(base / "state") in registered
        probe_server.cli("apps", "drain", "isolation-probe")  # containers of this moment
        for kind in KINDS:
            assert call_probe(probe_server, kind, "read", str(token)) == {"error": "ENOENT"}
            assert call_probe(probe_server, kind, "listdir", str(base / "state")) == {
                "entries": []}
            assert call_probe(probe_server, kind, "read", str(base / "beside.txt")) == {
                "data": "not coldsnap's"}  # the probe reads what is not hidden
    finally:
        if other is not None:
            other.stop()
        shutil.rmtree(base, ignore_errors=True)
