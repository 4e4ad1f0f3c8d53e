"""Sending the image built so far to a build container's host (fleet/build_inputs.py),
without Ray: an agent's ``BuildInputs`` on this machine, its calls made directly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from coldsnap.engine import ContainerSpec
from coldsnap.server.fleet import build_inputs
from coldsnap.server.fleet.bridge import HostLost
from coldsnap.server.fleet.build_inputs import (
    BuildInputLost,
    BuildInputs,
    inputs_of,
    push_inputs,
    send_tree,
)


def agent_calls(agent: BuildInputs) -> Any:
    def call(method: str, *args: Any) -> Any:
        return {"lacks_paths": agent.lacks, "receive_input": agent.receive,
                "place_input": agent.place}[method](*args)
    return call


def a_layer(layer: Path) -> None:
    (layer / "srv").mkdir(parents=True)
    (layer / "srv" / "ready").write_bytes(os.urandom(2 << 20 | 3))
    os.chmod(layer / "srv", 0o710)
    os.chown(layer / "srv" / "ready", 99, 98)
    (layer / "srv" / "link").symlink_to("ready")


def test_a_tree_arrives_whole_where_the_agent_is_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_inputs, "CHUNK_BYTES", 1 << 20)  # three chunks
    source, target = tmp_path / "cp" / "layer", tmp_path / "agent" / "key" / "layers" / "x"
    a_layer(source)
    agent = BuildInputs(tmp_path / "agent-staging")
    send_tree(source, str(target), tmp_path / "scratch", "vm/1", agent_calls(agent))
    assert (target / "srv" / "ready").read_bytes() == (source / "srv" / "ready").read_bytes()
    assert (target / "srv").stat().st_mode & 0o7777 == 0o710
    ready = (target / "srv" / "ready").stat()
    assert (ready.st_uid, ready.st_gid) == (99, 98)
    assert os.readlink(target / "srv" / "link") == "ready"
    assert (target.parent.stat().st_mode & 0o777) == 0o700, "an image's dirs stay private"
    assert list(agent.staging.iterdir()) == [] and list((tmp_path / "scratch").iterdir()) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["x"], "no leftovers"


def test_damaged_bytes_fail_naming_the_host_and_leave_nothing(tmp_path: Path) -> None:
    source, target = tmp_path / "layer", tmp_path / "agent" / "layer"
    a_layer(source)
    agent = BuildInputs(tmp_path / "staging")
    calls = agent_calls(agent)

    def damaging(method: str, *args: Any) -> Any:
        if method == "receive_input":
            args = (*args[:2], b"!" + args[2][1:])
        return calls(method, *args)

    with pytest.raises(BuildInputLost) as caught:
        send_tree(source, str(target), tmp_path / "scratch", "vm/1", damaging)
    words = str(caught.value)
    assert f"sending {source} (" in words and "bytes packed) to host vm/1" in words, words
    assert "do not match their digest" in words, words
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert list(agent.staging.iterdir()) == []


def test_only_what_the_agent_lacks_is_sent(tmp_path: Path) -> None:
    images = tmp_path / "images"
    have, lack, venv = (images / "k" / "layers" / "00-a", images / "k" / "layers" / "01-b",
                        images / "k" / "venv")
    for tree in (have, lack, venv / "bin"):
        tree.mkdir(parents=True)
    runtime = images / "runtime" / "abc"  # each agent makes coldsnap's runtime layer
    spec = ContainerSpec(argv=["/bin/sh"], layers=[runtime, lack, have, tmp_path / "elsewhere"],
                         env={"PATH": f"{venv}/bin:/usr/bin"})
    assert inputs_of(spec, images) == [lack, have, venv]
    sent: list[str] = []

    def call(method: str, *args: Any) -> Any:
        if method == "lacks_paths":
            return [p for p in args[0] if p != str(have)]
        sent.append(method)
        return None

    assert push_inputs(spec, images, tmp_path / "scratch", "vm/1", call) == \
        [str(lack), str(venv)]
    assert sent.count("place_input") == 2


def test_a_host_lost_midway_is_left_to_the_fleet(tmp_path: Path) -> None:
    source = tmp_path / "layer"
    a_layer(source)

    def lost(method: str, *args: Any) -> Any:
        raise HostLost("host vm/1 (Ray node 0123) is gone (RayActorError)")

    with pytest.raises(HostLost):  # the fleet places the container elsewhere
        send_tree(source, str(tmp_path / "there"), tmp_path / "scratch", "vm/1", lost)
    assert list((tmp_path / "scratch").iterdir()) == []
