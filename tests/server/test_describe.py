"""A deploy's version: it changes with the source, the image and the options."""

from __future__ import annotations

from coldsnap.server.describe import version_of


def test_version_changes_with_source_image_and_options() -> None:
    description = {"image": {"hash": "img1"},
                   "functions": {"f": {"options": {"timeout": None}}}}
    base = version_of(b"source", description)
    assert version_of(b"source", description) == base
    assert version_of(b"source2", description) != base
    assert version_of(b"source", {**description, "image": {"hash": "img2"}}) != base
    changed = {**description, "functions": {"f": {"options": {"timeout": 5}}}}
    assert version_of(b"source", changed) != base
