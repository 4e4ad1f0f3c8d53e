"""The fleet mark in a state dir: written whole, read back, absent for a single host."""

from __future__ import annotations

from pathlib import Path

from coldsnap.wire.fleet_mark import (
    fleet_cluster,
    forget_fleet,
    mark_path,
    remember_fleet,
    serve_command,
)


def test_a_mark_reads_back_and_is_forgotten(tmp_path: Path) -> None:
    assert fleet_cluster(tmp_path) is None
    assert fleet_cluster(tmp_path / "absent") is None  # a state dir not made yet
    remember_fleet(tmp_path, "ray://10.0.0.5:6379")
    assert fleet_cluster(tmp_path) == "ray://10.0.0.5:6379"
    assert mark_path(tmp_path).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["fleet-cluster"]  # no partial left
    remember_fleet(tmp_path, "ray")
    assert fleet_cluster(tmp_path) == "ray"
    forget_fleet(tmp_path)
    forget_fleet(tmp_path)  # twice is fine
    assert fleet_cluster(tmp_path) is None


def test_an_empty_mark_is_no_fleet(tmp_path: Path) -> None:
    mark_path(tmp_path).write_text("\n")
    assert fleet_cluster(tmp_path) is None


def test_the_serve_command_names_the_cluster() -> None:
    assert serve_command("ray://h:6379") == "coldsnap serve --cluster ray://h:6379"
