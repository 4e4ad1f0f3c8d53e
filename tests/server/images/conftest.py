"""A local registry for the whole session, and a small image pushed to it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.images.registry import ImageContent, LocalRegistry, missing, push_image

TINY = ImageContent(
    layers=[
        {"/app/hello.txt": ("hello from the image\n", 0o644),
         "/app/secret.txt": ("owned\n", 0o640),
         "/app/gone.txt": ("deleted by the last layer\n", 0o644)},
        {"/app/second.txt": ("from layer two\n", 0o644),
         "/usr/local/lib/python3.12/os.py": ("# landmark\n", 0o644),
         "/usr/local/bin/python3.12": ("#!/bin/sh\n", 0o755)},
    ],
    env={"PATH": "/usr/local/bin:/usr/bin:/bin", "GREETING": "hi=there"},
    workdir="/app",
    cmd=("/bin/sh", "-c", "cat hello.txt"),
    symlinks={"/usr/local/bin/python3": "python3.12"},
    owners={"/app/secret.txt": (1234, 4321)},
    deleted=("/app/gone.txt",),
)


@dataclasses.dataclass(frozen=True)
class PushedImage:
    registry: LocalRegistry
    ref: str  # 127.0.0.1:PORT/tiny:1
    digest: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """A real ``docker-registry`` on 127.0.0.1, stopped at the end of the session."""
    if (why := missing()) is not None:
        pytest.skip(why)
    server = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_image(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
               ) -> PushedImage:
    """TINY, built and pushed once as ``tiny:1``."""
    digest = push_image(registry, "tiny", "1", TINY, tmp_path_factory.mktemp("tiny"))
    return PushedImage(registry, f"{registry.address}/tiny:1", digest)


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "oci-cache"
