"""User namespaces (engine/userns.py): containers on an image's own root run as an
unprivileged uid range of the host, fresh and restored, with real CRIU."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coldsnap.engine.base import Container, ContainerSpec
from coldsnap.engine.criu_engine import CriuEngine
from coldsnap.engine.userns import FIRST, SIZE, UserNamespace, shift_tree
from coldsnap.server.images.debian import DebianBase, ensure_debian_base
from coldsnap.server.images.runtime_layer import ensure_runtime_layer
from coldsnap.settings import Settings
from tests.engine.conftest import ask, read_line
from tests.server.images.test_debian import recipe_for, require_debootstrap

# Stdlib only: it runs on the image's own Python.
PROBE = """
import json, os
out = os.fdopen(int(os.environ["COLDSNAP_CTRL_OUT_FD"]), "w", buffering=1)
inp = os.fdopen(int(os.environ["COLDSNAP_CTRL_IN_FD"]), "r")
remembered = "set before the snapshot: " + str(os.getpid())


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return type(exc).__name__


print(json.dumps({"ready": True}), file=out)
for line in inp:
    ask = json.loads(line)
    if ask["op"] == "look":
        answer = {"uid": os.getuid(), "uid_map": open("/proc/self/uid_map").read().split(),
                  "remembered": remembered, "reads": {p: read(p) for p in ask["paths"]}}
    else:
        with open(ask["path"], "w") as f:
            f.write("written")
        answer = {"written": ask["path"]}
    print(json.dumps(answer), file=out)
"""


@pytest.fixture(scope="module")
def base() -> DebianBase:
    base_dir = Settings.from_env().base_dir
    require_debootstrap(recipe_for("3.11"), base_dir)
    return ensure_debian_base("3.11", base_dir, lambda line: None)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_runtime_layer(tmp_path_factory.mktemp("images"))  # carries tini


def probe_spec(base: DebianBase, runtime: Path, snapshot_phase: bool,
               binds: tuple[str, ...] = ()) -> ContainerSpec:
    return ContainerSpec(argv=[base.python, "probe.py"], env={"PATH": "/usr/bin:/bin"},
                         files={"probe.py": PROBE.encode()}, layers=[runtime],
                         base=base.rootfs, snapshot_phase=snapshot_phase, binds=binds)


def look(container: Container, *paths: str) -> dict:
    return ask(container, "look", paths=list(paths))  # type: ignore[arg-type]


def test_an_image_root_runs_as_the_server_s_range_and_host_root_files_stay_shut(
    engine: CriuEngine, base: DebianBase, runtime: Path, tmp_path: Path
) -> None:
    assert engine.userns is not None
    host_base = engine.userns.ids.base
    secret, public = tmp_path / "secret", tmp_path / "public"
    secret.write_text("the host's")
    secret.chmod(0o600)  # the host's root owns both
    public.write_text("anyone's")
    public.chmod(0o644)
    container = engine.start(probe_spec(base, runtime, False, binds=(str(secret), str(public))))
    try:
        read_line(container)
        seen = look(container, str(secret), str(public), "/etc/shadow")
        assert seen["uid"] == 0 and seen["uid_map"] == ["0", str(host_base), str(SIZE)]
        assert seen["reads"][str(secret)] == "PermissionError"  # visible, yet out of reach
        assert seen["reads"][str(public)] == "anyone's"  # the control: the same bind works
        assert seen["reads"]["/etc/shadow"] != "PermissionError"  # the image's own root files
        ask(container, "write", path="/etc/written-inside")
        upper = engine._dirs[container.id].upper
        assert (upper / "etc" / "written-inside").stat().st_uid == host_base
    finally:
        container.kill()


def test_a_snapshot_of_an_image_root_restores_in_the_same_range(
    engine: CriuEngine, base: DebianBase, runtime: Path
) -> None:
    assert engine.userns is not None
    container = engine.start(probe_spec(base, runtime, True))
    read_line(container)
    before = look(container)
    ask(container, "write", path="/etc/written-before")
    info = engine.checkpoint(container, "userns-probe")
    # On disk the snapshot's filesystem keeps the container's own ids (root: 0).
    assert (info.path / "fs" / "etc" / "written-before").stat().st_uid == 0
    restored = engine.restore("userns-probe", probe_spec(base, runtime, False))
    try:
        after = look(restored, "/etc/written-before")
        assert after["uid_map"] == ["0", str(engine.userns.ids.base), str(SIZE)]
        assert after["remembered"] == before["remembered"]  # the same memory
        assert after["reads"]["/etc/written-before"] == "written"
        assert Path(f"/proc/{restored.pid}/status").read_text().count(
            f"\t{engine.userns.ids.base}\t") >= 2  # Uid: and Gid: lines, seen from the host
    finally:
        restored.kill()


def test_from_host_containers_keep_the_host_s_ids(engine: CriuEngine) -> None:
    # The documented limit (README, Known limits): the host's Python lives where a
    # mapped root can't go.
    from tests.engine.conftest import worker_spec

    container = engine.start(worker_spec(snapshot_phase=False))
    try:
        read_line(container)
        uid_map = Path(f"/proc/{container.pid}/uid_map").read_text().split()
        assert uid_map == ["0", "0", "4294967295"]
    finally:
        container.kill()


def test_two_run_dirs_get_two_ranges_and_a_restart_keeps_its_own(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    first = UserNamespace(tmp_path / "run-a", claims)
    second = UserNamespace(tmp_path / "run-a-too", claims)
    try:
        assert first.ids.base != second.ids.base
        assert abs(first.ids.base - second.ids.base) >= SIZE
        base = first.ids.base
        first.close()
        again = UserNamespace(tmp_path / "run-a", claims)
        assert again.ids.base == base
        again.close()
    finally:
        second.close()


def test_one_owner_shares_its_range_across_processes_and_another_owner_keeps_apart(
    tmp_path: Path
) -> None:
    # A fleet's agents (processes of their own) claim under the fleet's owner.
    claims = tmp_path / "claims"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\n"
         "from pathlib import Path\n"
         "from coldsnap.engine.userns import UserNamespace\n"
         f"ns = UserNamespace('fleet-a', Path({str(claims)!r}))\n"
         "print(ns.ids.base, flush=True)\n"
         "sys.stdin.read()\n"
         "ns.close()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        base = int(holder.stdout.readline())
        same = UserNamespace("fleet-a", claims)
        other = UserNamespace("fleet-b", claims)
        try:
            assert same.ids.base == base  # alike hosts: one range, one host key
            assert abs(other.ids.base - base) >= SIZE  # another server's stays apart
            same.close()
            # The other process still holds it: a server of another owner can't take it.
            claim = claims / str((base - FIRST) // SIZE)
            assert claim.read_text().split() == [str(holder.pid), "fleet-a"]
        finally:
            other.close()
    finally:
        holder.communicate("", timeout=30)
    assert not list(claims.iterdir())  # the last holder's close took the file


def test_shift_tree_moves_owners_and_leaves_ids_it_would_take_below_zero(
    tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    os.symlink("f", tmp_path / "d" / "link")
    os.lchown(tmp_path / "d" / "f", 5, 6)
    shift_tree(tmp_path / "d", 1000)
    assert [(p.lstat().st_uid, p.lstat().st_gid) for p in
            (tmp_path / "d", tmp_path / "d" / "f", tmp_path / "d" / "link")] == [
        (1000, 1000), (1005, 1006), (1000, 1000)]
    shift_tree(tmp_path / "d", -1005)
    assert (tmp_path / "d" / "f").stat().st_uid == 0
    assert (tmp_path / "d").stat().st_uid == 1000  # 1000 - 1005 < 0: left alone


def test_doctor_says_whether_user_namespaces_work_here(criu_settings: Settings) -> None:
    from coldsnap.engine.doctor import run_checks

    check = next(c for c in run_checks(criu_settings) if c.name == "user namespaces")
    assert (check.ok, check.needed) == (True, True), check  # CRIU works here (conftest)
    assert "unprivileged uid range" in check.detail
    off = dataclasses.replace(criu_settings, user_namespaces="off")
    check = next(c for c in run_checks(off) if c.name == "user namespaces")
    assert (check.ok, check.needed, check.detail.split()[0]) == (True, False, "off")


def test_a_bad_setting_names_the_values(criu_settings: Settings) -> None:
    from coldsnap.engine.base import EngineUnavailable
    from coldsnap.engine.userns import user_namespace

    words = "COLDSNAP_USER_NAMESPACES='yes': use one of on, off"
    with pytest.raises(EngineUnavailable, match=words):
        user_namespace(dataclasses.replace(criu_settings, user_namespaces="yes"))
