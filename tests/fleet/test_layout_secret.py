"""The store's layout secret on a fleet: each host with a store is asked in turn, and a
control plane that could not read it uses its own only until the store answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap.server.fleet.fleet import Fleet
from coldsnap.server.fleet.liveness import HostSlow
from coldsnap.server.remote_store.layout import (
    PROVISIONAL,
    RETRY_S,
    SECRET_OBJECT,
    LayoutSecret,
    layout_secret,
)


class SecretHost:
    """A host agent that only reads the store's secret, as much of one as Fleet uses."""

    engine_name, host_key, isolated, store, capacity = "none", "k", True, None, None

    def __init__(self, host: str, answer: str | Exception, store_url: str = "s3://b/p") -> None:
        self.host, self.answer, self.store_url = host, answer, store_url
        self.asked = 0

    def layout_secret(self) -> str:
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_fleet_asks_the_next_host_when_one_is_slow() -> None:
    slow = SecretHost("a-slow", HostSlow("host a-slow was slow: it did not answer"))
    no_store = SecretHost("b-no-store", "never asked", store_url="")
    answers = SecretHost("c-answers", "the-store's")
    fleet = Fleet([slow, no_store, answers])  # type: ignore[list-item]
    assert fleet.layout_secret() == "the-store's"
    assert (slow.asked, no_store.asked, answers.asked) == (1, 0, 1)


def test_the_fleet_raises_the_last_error_when_no_host_can_read_it() -> None:
    fleet = Fleet([SecretHost("a", OSError("connection refused")),  # type: ignore[list-item]
                   SecretHost("b", OSError("store down"))])
    with pytest.raises(OSError, match="store down"):
        fleet.layout_secret()


def test_a_provisional_secret_never_shadows_the_store_s(tmp_path: Path) -> None:
    store: list[str | Exception] = [OSError("connection refused")]
    now = [0.0]

    def shared() -> str:
        if isinstance(store[0], Exception):
            raise store[0]
        return store[0]

    secret = LayoutSecret(tmp_path, shared, clock=lambda: now[0])
    own = secret.value()
    assert len(own) == 32 and not (tmp_path / SECRET_OBJECT).exists()
    assert (tmp_path / PROVISIONAL).read_text() == own  # kept apart from the store's
    store[0] = "the-store's"
    assert secret.value() == own  # asked again only after RETRY_S
    now[0] = RETRY_S
    assert secret.value() == "the-store's"  # the store answered: its secret from now on
    assert (tmp_path / SECRET_OBJECT).read_text() == "the-store's"
    assert not (tmp_path / PROVISIONAL).exists()


def test_the_next_start_reads_the_store_again(tmp_path: Path) -> None:
    def down() -> str:
        raise OSError("connection refused")

    own = layout_secret(tmp_path, down)
    assert layout_secret(tmp_path, down) == own  # still down: the same provisional one
    assert layout_secret(tmp_path, lambda: "the-store's") == "the-store's"
    assert layout_secret(tmp_path, down) == "the-store's"  # kept once read
