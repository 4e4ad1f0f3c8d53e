"""The mask layer's plan (pure logic), the server registry, and the layer's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coldsnap.engine.masks import (
    OPAQUE,
    REDIRECT,
    MaskLayers,
    MaskPlan,
    ServerRegistry,
    plan_masks,
)


def test_a_hidden_dir_alone_is_opaque() -> None:
    assert plan_masks(["/home", "/tmp"], []) == MaskPlan(("/home", "/tmp"), ())


def test_a_visible_dir_inside_a_hidden_one_is_redirected_past_opaque_parents() -> None:
    plan = plan_masks(["/root"], ["/root/.pyenv/versions/3.11.7"])
    assert plan.opaque == ("/root", "/root/.pyenv", "/root/.pyenv/versions")
    assert plan.redirects == ("/root/.pyenv/versions/3.11.7",)


def test_a_visible_dir_outside_hidden_ones_needs_nothing() -> None:
    assert plan_masks(["/tmp"], ["/usr", "/work/repo/.venv"]) == MaskPlan(("/tmp",), ())


def test_a_hidden_dir_inside_a_hidden_one_adds_nothing() -> None:
    assert plan_masks(["/tmp", "/tmp/cs-1/state"], []) == MaskPlan(("/tmp",), ())


def test_a_hidden_dir_inside_a_visible_one_is_hidden_again() -> None:
    plan = plan_masks(["/tmp", "/tmp/ci/repo/state"], ["/tmp/ci/repo"])
    assert plan.opaque == ("/tmp", "/tmp/ci", "/tmp/ci/repo/state")
    assert plan.redirects == ("/tmp/ci/repo",)


def test_visible_wins_where_both_name_one_dir() -> None:
    plan = plan_masks(["/var/lib", "/var/lib/cs-images"], ["/var/lib/cs-images"])
    assert plan == MaskPlan(("/var/lib",), ("/var/lib/cs-images",))


def test_the_registry_lists_every_servers_dirs_and_forgets_vanished_ones(tmp_path: Path) -> None:
    registry = ServerRegistry(tmp_path / "registry")
    gone, kept = tmp_path / "gone", tmp_path / "kept"
    for state in (gone, kept):
        state.mkdir()
        (state / "state.db").write_text("x")
        registry.register(state, [state / "snapshots", Path(f"{state}-images")])
    assert registry.dirs() == sorted(
        str(p) for s in (gone, kept) for p in (s, s / "snapshots", Path(f"{s}-images")))
    (tmp_path / "registry" / "garbage.json").write_text("{not json")  # tolerated
    (gone / "state.db").unlink()
    gone.rmdir()
    registry.prune()
    assert registry.dirs() == sorted(str(p) for p in (kept, kept / "snapshots",
                                                      Path(f"{kept}-images")))
    entry = json.loads(next((tmp_path / "registry").glob("[0-9a-f]*.json")).read_text())
    assert entry["pid"] == os.getpid()


@pytest.mark.skipif(os.geteuid() != 0, reason="trusted.* xattrs need root")
def test_the_layer_holds_opaque_dirs_redirects_and_whiteouts(tmp_path: Path) -> None:
    plan = plan_masks(["/tmp"], ["/tmp/images"])
    layer = MaskLayers(tmp_path).layer(plan)
    assert MaskLayers(tmp_path).layer(plan) == layer  # made once per plan
    assert os.getxattr(layer / "tmp", OPAQUE) == b"y"
    assert (layer / "tmp").stat().st_mode & 0o7777 == 0o1777  # the host's mode
    assert os.getxattr(layer / "tmp" / "images", REDIRECT) == b"/tmp/images"
    shadow = layer / "etc" / "shadow"
    assert shadow.is_char_device() and shadow.stat().st_rdev == 0  # a whiteout


def test_shared_caches_and_empty_dirs_keep_no_entry(tmp_path: Path) -> None:
    # Every server lists the host-wide caches: they must not keep a gone server's entry
    # (they kept thousands, and planning over them slowed every restore).
    registry = ServerRegistry(tmp_path / "registry")
    cache, gone, kept = tmp_path / "bases", tmp_path / "gone", tmp_path / "kept"
    for path in (cache, gone, kept):
        path.mkdir()
    (cache / "debian.ext4").write_text("x")
    (kept / "state.db").write_text("x")
    registry.register(gone, [gone / "snapshots"], shared=[cache])
    registry.register(kept, [kept / "snapshots"], shared=[cache])
    assert str(cache) in registry.dirs()  # still hidden while a server lists it
    (tmp_path / "registry" / "old.json").write_text(json.dumps(  # an older entry's form
        {"state_dir": "/nowhere", "pid": 1, "dirs": ["/nowhere", str(cache)]}))
    registry.prune()  # `gone` is an empty dir: it hides nothing
    names = {json.loads(p.read_text())["state_dir"]
             for p in (tmp_path / "registry").glob("*.json")}
    assert names == {str(kept)}
    assert registry.dirs() == sorted([str(cache), str(kept), str(kept / "snapshots")])
