"""Image references read as Docker reads them: defaults, local registries, bad forms."""

from __future__ import annotations

import pytest

from coldsnap.server.images.oci_ref import BadReference, ImageRef

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "name"), [
    ("python:3.11-slim", "docker.io/library/python:3.11-slim"),
    ("python", "docker.io/library/python:latest"),
    ("docker.io/library/python:3.11-slim", "docker.io/library/python:3.11-slim"),
    ("index.docker.io/library/python:3", "docker.io/library/python:3"),
    ("team/app:2", "docker.io/team/app:2"),
    ("localhost:5000/tiny:1", "localhost:5000/tiny:1"),
    ("localhost/tiny", "localhost/tiny:latest"),
    ("ghcr.io/org/sub/app:v1.2", "ghcr.io/org/sub/app:v1.2"),
    ("127.0.0.1:5000/tiny", "127.0.0.1:5000/tiny:latest"),
    (f"python@{DIGEST}", f"docker.io/library/python@{DIGEST}"),
    (f"python:3.11@{DIGEST}", f"docker.io/library/python:3.11@{DIGEST}"),
])  # fmt: skip
def test_names_fill_in_docker_defaults(text: str, name: str) -> None:
    assert ImageRef.parse(text).name == name


def test_pinned_drops_the_tag_for_the_digest() -> None:
    ref = ImageRef.parse("localhost:5000/tiny:1").pinned(DIGEST)
    assert ref.transport() == f"docker://localhost:5000/tiny@{DIGEST}"


@pytest.mark.parametrize(("text", "local"), [
    ("localhost:5000/a", True), ("127.0.0.1:5000/a", True), ("127.1.2.3/a:1", True),
    ("[::1]:5000/a", True), ("python:3.11", False), ("registry.example:5000/a", False),
    ("localhost.example/a", False),
])  # fmt: skip
def test_only_this_machines_registries_are_local(text: str, local: bool) -> None:
    assert ImageRef.parse(text).is_local() is local


@pytest.mark.parametrize(("text", "why"), [
    ("Python:3.11", "a repository name is lowercase"),
    ("python:3.11 slim", "has characters a tag can't have"),
    ("python@sha256:abc", "is not sha256: and 64 hex digits"),
    ("", "a repository name is lowercase"),
    ("localhost:5000/", "a repository name is lowercase"),
])  # fmt: skip
def test_bad_references_show_the_accepted_forms(text: str, why: str) -> None:
    with pytest.raises(BadReference) as raised:
        ImageRef.parse(text)
    assert why in str(raised.value)
    assert "'python:3.11-slim'" in str(raised.value)
