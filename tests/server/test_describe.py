"""server/describe.py: the version of a deploy."""

from __future__ import annotations

import dataclasses

from coldsnap.server.describe import version_of
from coldsnap.wire.description import AppDescription


def test_version_changes_with_source_image_and_options() -> None:
    description = AppDescription.from_dict({
        "app": "a", "image": {"hash": "img1", "spec": {"layers": [{"op": "from_host"}]}},
        "functions": {"f": {"kind": "function", "options": {"timeout": None}}}})
    base = version_of(b"source", description)
    assert version_of(b"source", description) == base
    assert version_of(b"source2", description) != base
    assert version_of(b"source", dataclasses.replace(description, image_hash="img2")) != base
    assert version_of(b"source", description.without_snapshots()) == base  # none to turn off
    f = description.functions["f"]
    timeout = dataclasses.replace(f, options=dataclasses.replace(f.options, timeout=5))
    changed = dataclasses.replace(description, functions={"f": timeout})
    assert version_of(b"source", changed) != base
