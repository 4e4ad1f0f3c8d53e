"""Deployed apps' sources in a real S3 store (SeaweedFS): a put the store can't take is
retried until it can, never overtakes a newer deploy, and a restart puts what a stop
left unstored."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from coldsnap.server.remote_store import sources as sources_module
from coldsnap.server.remote_store.bucket import Bucket
from coldsnap.server.remote_store.sources import RemoteSources
from coldsnap.settings import Settings
from tests.conftest import ServerHandle
from tests.end_to_end import wait_for, write_app
from tests.server.remote_store.seaweed import BUCKET, Seaweed, free_port, new_prefix

V1, V2, V3 = "1" * 64, "2" * 64, "3" * 64
APP = """
import coldsnap

app = coldsnap.App("{name}")


@app.function()
def answer() -> int:
    return 42
"""


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(sources_module, "RETRY_MAX_S", 0.05)


def remote_sources(seaweed: Seaweed, prefix: str, monkeypatch: pytest.MonkeyPatch,
                   down: bool = False) -> RemoteSources:
    """A host's sources in the store at ``prefix``; ``down``: at a port nothing answers."""
    for name, value in seaweed.env(prefix).items():
        monkeypatch.setenv(name, value)
    if down:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    sources = RemoteSources(Settings(store_url=f"s3://{BUCKET}/{prefix}"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweed.endpoint)
    return sources


def store_comes_up(sources: RemoteSources) -> None:
    sources.bucket = Bucket(sources.url)  # AWS_ENDPOINT_URL names the running store again


def failures(caplog: pytest.LogCaptureFixture, version: str) -> int:
    return sum(f"version {version[:12]} in s3://" in r.getMessage() and "retrying in" in
               r.getMessage() for r in caplog.records)


def current(seaweed: Seaweed, prefix: str, app: str) -> dict[str, Any]:
    return dict(json.loads(seaweed.get(f"{prefix}/sources/{app}/current.json")))


def test_a_source_put_while_the_store_is_down_is_stored_once_it_answers(
        seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        fast_retries: None) -> None:
    prefix = new_prefix()
    host = remote_sources(seaweed, prefix, monkeypatch, down=True)
    host.upload_later("hello", V1, "hello.py", b"print('v1')")
    wait_for(lambda: failures(caplog, V1) > 5, 60, "more than 5 failed puts")
    assert "storing the source of app 'hello' version 111111111111 in s3://" in caplog.text
    assert not host.idle()  # still waiting for the store
    store_comes_up(host)
    wait_for(host.idle, 60, "the source's upload")
    assert seaweed.get(f"{prefix}/sources/hello/{V1}") == b"print('v1')"
    assert current(seaweed, prefix, "hello")["version"] == V1


def test_an_older_version_s_retry_never_replaces_a_newer_current_json(
        seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        fast_retries: None) -> None:
    prefix = new_prefix()
    a = remote_sources(seaweed, prefix, monkeypatch, down=True)
    a.upload_later("same-host", V1, "app.py", b"v1")
    a.upload_later("two-hosts", V1, "app.py", b"v1")
    wait_for(lambda: failures(caplog, V1) >= 2, 60, "failed puts of both apps")
    a.upload_later("same-host", V2, "app.py", b"v2")  # A's newer deploy replaces its retry
    b = remote_sources(seaweed, prefix, monkeypatch)  # another host deploys later, up
    b.upload_later("two-hosts", V3, "app.py", b"v3")
    wait_for(b.idle, 60, "B's upload")
    store_comes_up(a)
    wait_for(a.idle, 60, "A's uploads")
    assert current(seaweed, prefix, "same-host")["version"] == V2
    assert f"sources/same-host/{V1}" not in seaweed.objects(prefix)  # dropped, not stored
    assert current(seaweed, prefix, "two-hosts")["version"] == V3
    assert seaweed.get(f"{prefix}/sources/two-hosts/{V1}") == b"v1"


def test_a_restart_stores_the_sources_a_stop_left_unstored_and_never_rolls_back(
        server_factory: type[ServerHandle], seaweed: Seaweed, tmp_path: Path) -> None:
    prefix = new_prefix()
    env = {**seaweed.env(prefix), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    a = server_factory("none", env).start()  # the store is unreachable from A
    for name in ("unstored", "moved-on"):
        a.cli("deploy", str(write_app(tmp_path, name.replace("-", "_"),
                                      APP.format(name=name))))
    wait_for(lambda: a.log().count("retrying in") >= 2, 60, "A's failed puts")
    assert a.stop() == 0, a.log()[-3000:]
    later = {"version": V3, "filename": "other.py", "sha256": "0" * 64,
             "deployed_at": time.time()}  # another host deployed after A
    seaweed.put(f"{prefix}/sources/moved-on/current.json", json.dumps(later).encode())

    a.env["AWS_ENDPOINT_URL"] = seaweed.endpoint  # the store answers now
    a.start()
    for name in ("unstored", "moved-on"):
        wait_for(lambda line=f"stored the source of app {name!r}": line in a.log(), 60,
                 f"A's put of {name}'s source")
    [version] = [n.split("/")[-1] for n in seaweed.objects(prefix)
                 if n.startswith("sources/unstored/") and not n.endswith("current.json")]
    assert current(seaweed, prefix, "unstored")["version"] == version
    assert current(seaweed, prefix, "moved-on") == later, a.log()[-3000:]
    assert "deployed later on another host: left as is" in a.log()
    assert len([n for n in seaweed.objects(prefix) if n.startswith("sources/moved-on/")]) == 2
