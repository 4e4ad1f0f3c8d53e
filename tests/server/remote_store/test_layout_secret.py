"""The store's layout secret with a real S3 store (SeaweedFS): hosts that find none at
the same moment end with the same one, and a host whose kept one differs from the
store's takes the store's at its next start."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coldsnap.server.remote_store.bucket import Bucket, StoreUnavailable, StoreUrl
from coldsnap.server.remote_store.layout import SECRET_OBJECT, LayoutSecret, store_secret
from tests.server.remote_store.seaweed import Seaweed, new_prefix


def store_bucket(seaweed: Seaweed, prefix: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    env = seaweed.env(prefix)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Bucket(StoreUrl.parse(env["COLDSNAP_STORE_URL"]))


class HostClient:
    """A host's S3 client: its first read returns once every host has read (they ask at
    the same moment) and its writes arrive ``late_s`` later (a slower network)."""

    def __init__(self, bucket: Bucket, met: threading.Barrier, late_s: float) -> None:
        self._client, self._met, self._late_s = bucket._client, met, late_s
        self._first_read = True
        bucket._client = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        try:
            return self._client.get_object(**kwargs)
        finally:
            if self._first_read:
                self._first_read = False
                self._met.wait(30)

    def put_object(self, **kwargs: Any) -> Any:
        time.sleep(self._late_s)
        return self._client.put_object(**kwargs)


@pytest.mark.parametrize("conditional_writes", [True, False])
def test_hosts_that_ask_at_once_end_with_the_same_secret(
        seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch, conditional_writes: bool) -> None:
    prefix = new_prefix()
    hosts = [store_bucket(seaweed, prefix, monkeypatch) for _ in range(3)]
    met = threading.Barrier(len(hosts))
    for number, bucket in enumerate(hosts):
        HostClient(bucket, met, late_s=0.4 * number)
        if not conditional_writes:  # as a store that ignores If-None-Match would answer
            monkeypatch.setattr(bucket, "put_new", lambda name, data: None)
    secrets: dict[int, str] = {}

    def ask(number: int) -> None:
        secrets[number] = store_secret(hosts[number])

    threads = [threading.Thread(target=ask, args=(number,)) for number in range(len(hosts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    kept = hosts[0].get(SECRET_OBJECT)
    assert len(secrets) == len(hosts) and kept is not None
    assert set(secrets.values()) == {kept.decode()}, (secrets, kept)


def test_a_host_whose_kept_secret_differs_takes_the_store_s_at_start(
        seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    bucket = store_bucket(seaweed, new_prefix(), monkeypatch)
    bucket.put(SECRET_OBJECT, b"the-store-s")
    (tmp_path / SECRET_OBJECT).write_text("this-host-s")
    with caplog.at_level(logging.WARNING, logger="coldsnap.server.remote_store.layout"):
        secret = LayoutSecret(tmp_path, lambda: store_secret(bucket))
    assert secret.value() == "the-store-s"
    assert (tmp_path / SECRET_OBJECT).read_text() == "the-store-s"
    assert "layout secret differed from the store's" in caplog.text
    assert "share fewer pages" in caplog.text and "still restore" in caplog.text

    def down() -> str:
        raise StoreUnavailable("reading layout-secret failed: connection refused")

    caplog.clear()
    started = time.monotonic()
    assert LayoutSecret(tmp_path, down).value() == "the-store-s"  # down: the kept one
    assert time.monotonic() - started < 1.0 and "WARNING" not in caplog.text
