"""Shipping a build container's output (fleet/build_output.py), without Ray: an agent's
``BuildOutputs`` on this machine's filesystem, its calls made directly."""

from __future__ import annotations

import dataclasses
import io
import os
import random
from pathlib import Path
from typing import Any

import pytest

from coldsnap.engine import Container, ContainerSpec
from coldsnap.server.fleet import build_output
from coldsnap.server.fleet.build_output import (
    BuildOutputLost,
    BuildOutputs,
    ShippedBuilds,
    machine_identity,
    receive_output,
    ship_mode,
    ships,
)
from coldsnap.settings import SettingError, Settings


def write_layer(layer: Path) -> None:
    """What a build step may keep: files with modes and owners, a symlink, a whiteout."""
    (layer / "opt" / "tool").mkdir(parents=True)
    (layer / "opt" / "tool" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(layer / "opt" / "tool" / "run.sh", 0o751)
    os.chown(layer / "opt" / "tool" / "run.sh", 1234, 4321)
    (layer / "opt" / "link").symlink_to("tool/run.sh")
    (layer / "token").write_bytes(random.Random(7).randbytes(3 << 20 | 5))  # 4 chunks
    os.mknod(layer / "deleted", 0o600 | 0o020000, os.makedev(0, 0))  # overlay whiteout


class Agent:
    """An agent's build outputs, started by a stand-in for the engine that writes a
    layer where the spec says and exits with ``code``."""

    def __init__(self, staging: Path, code: int = 0) -> None:
        self.outputs = BuildOutputs(staging)
        self.code = code

    def start(self, spec: ContainerSpec) -> Container:
        def engine_start(staged: ContainerSpec) -> Container:
            assert staged.keep_upper is not None and staged.keep_upper != spec.keep_upper
            write_layer(staged.keep_upper)
            container = Container(staged.container_id, 0, io.BytesIO(), io.BytesIO(),
                                  io.BytesIO())
            container.returncode = self.code
            return container

        return self.outputs.start(spec, engine_start)

    def call(self, method: str, *args: Any) -> Any:
        return {"pack_output": self.outputs.pack, "read_output": self.outputs.read,
                "drop_output": self.outputs.drop}[method](*args)


def test_an_output_arrives_whole_at_the_builders_path_and_leaves_the_agent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_output, "CHUNK_BYTES", 1 << 20)
    agent = Agent(tmp_path / "agent" / "build-output")
    keep = tmp_path / "images" / "key" / "layers" / "00-commands-abc"
    keep.parent.mkdir(parents=True)
    spec = ContainerSpec(argv=["true"], keep_upper=keep)
    agent.start(spec)
    receive_output("vm/1234", spec.container_id, keep, agent.call)

    expected = tmp_path / "expected"
    write_layer(expected)
    for name in ("opt/tool/run.sh", "token"):
        assert (keep / name).read_bytes() == (expected / name).read_bytes(), name
    run = (keep / "opt" / "tool" / "run.sh").stat()
    assert (run.st_mode & 0o7777, run.st_uid, run.st_gid) == (0o751, 1234, 4321)
    assert os.readlink(keep / "opt" / "link") == "tool/run.sh"
    whiteout = (keep / "deleted").stat()
    assert whiteout.st_rdev == os.makedev(0, 0) and (whiteout.st_mode & 0o170000) == 0o020000
    assert list(agent.outputs.staging.iterdir()) == [], "the agent's copy is removed"
    assert sorted(p.name for p in keep.parent.iterdir()) == [keep.name], "no leftovers"


def test_a_failed_step_ships_nothing(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "staging", code=3)
    keep = tmp_path / "layer"
    spec = ContainerSpec(argv=["false"], keep_upper=keep)
    agent.start(spec)
    receive_output("vm/1234", spec.container_id, keep, agent.call)
    assert not keep.exists()
    assert list(agent.outputs.staging.iterdir()) == []


def test_damaged_bytes_fail_naming_the_host_dir_and_size_and_leave_no_layer(
        tmp_path: Path) -> None:
    agent = Agent(tmp_path / "staging")
    keep = tmp_path / "images" / "layer"
    keep.parent.mkdir()
    spec = ContainerSpec(argv=["true"], keep_upper=keep)
    agent.start(spec)

    def damaging(method: str, *args: Any) -> Any:
        answer = agent.call(method, *args)
        return answer[:-1] + b"!" if method == "read_output" else answer

    with pytest.raises(BuildOutputLost) as caught:
        receive_output("vm/1234", spec.container_id, keep, damaging)
    words = str(caught.value)
    packed = str(agent.outputs.staging / spec.container_id / "output.tar")
    assert f"on host vm/1234 ({packed}, " in words and " bytes)" in words, words
    assert "do not match the digest" in words and "deploy again" in words, words
    assert list(keep.parent.iterdir()) == [], "nothing half-written"
    assert list(agent.outputs.staging.iterdir()) == [], "the agent's copy is removed"


@dataclasses.dataclass
class Record:
    container_id: str
    method: str  # the agent's method that started it


def test_the_control_plane_ships_from_another_machine_only(tmp_path: Path) -> None:
    here = machine_identity(tmp_path)
    spec = ContainerSpec(argv=["true"], keep_upper=tmp_path / "layer")
    for mode, agent_machine, method in [("auto", here, "start"), ("auto", "other", "start_build"),
                                        ("always", here, "start_build"),
                                        ("never", "other", "start")]:
        builds = ShippedBuilds(Settings(image_dir=tmp_path, fleet_ship_builds=mode),
                               "vm/1", agent_machine)
        record = builds.start(spec, lambda method, *args: Record(spec.container_id, method))
        assert record.method == method, mode


def test_a_host_gone_before_the_output_left_says_so(tmp_path: Path) -> None:
    builds = ShippedBuilds(Settings(image_dir=tmp_path, fleet_ship_builds="always"), "vm/1",
                           "m")
    spec = ContainerSpec(argv=["true"], keep_upper=tmp_path / "layer")
    builds.start(spec, lambda method, *args: Record(spec.container_id, method))

    def kill() -> None:
        raise RuntimeError("host vm/1 (Ray node 0123) is gone (RayActorError)")

    with pytest.raises(BuildOutputLost, match=r"never left host vm/1: host vm/1 .* gone"):
        builds.release(spec.container_id, lambda *args: None, kill)


def test_whether_to_ship() -> None:
    spec = ContainerSpec(argv=["true"], keep_upper=Path("/images/k/layers/x"))
    plain = ContainerSpec(argv=["true"])
    assert ships("always", spec, "a", "a") and not ships("always", plain, "a", "b")
    assert ships("auto", spec, "a", "b") and not ships("auto", spec, "a", "a")
    assert not ships("never", spec, "a", "b")
    assert ship_mode(Settings(fleet_ship_builds=" Always ")) == "always"
    with pytest.raises(SettingError, match="COLDSNAP_FLEET_SHIP_BUILDS='nfs' is not one of "
                                           "auto, always, never"):
        ship_mode(Settings(fleet_ship_builds="nfs"))


def test_one_machine_and_one_image_dir_have_one_identity(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert machine_identity(tmp_path / "a") == machine_identity(tmp_path / "a")
    assert machine_identity(tmp_path / "a") != machine_identity(tmp_path / "b")
    assert machine_identity(tmp_path / "absent") != machine_identity(tmp_path / "absent")
