"""The shared store's fixtures: one SeaweedFS S3 server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.remote_store.seaweed import Seaweed, WeedMissing


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    """A running ``weed mini``; each test uses a prefix of its own (``new_prefix``)."""
    store = Seaweed()
    try:
        try:
            store.start()
        except WeedMissing as exc:
            pytest.skip(str(exc))
        yield store
    finally:
        store.cleanup()
