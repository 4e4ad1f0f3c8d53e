"""Volumes through the whole platform: shared by containers, kept across server
restarts, filled and read with the CLI, mounted across a memory snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import app_with_env, module_server, require_criu, write_app

APP = APPS / "volume_user.py"


def _call(server: ServerHandle, code: str) -> Any:
    """Run ``code`` (which sets ``result``) in a client process; its value, from JSON."""
    script = f"import json, coldsnap\n{code}\nprint(json.dumps(result))"
    return json.loads(server.python(script).stdout.strip().splitlines()[-1])


def _fn(tag: str) -> str:
    return f"coldsnap.Function.from_name('test-volumes', {tag!r})"


def _holder(method: str, *args: str) -> str:
    return (f"result = coldsnap.Cls.from_name('test-volumes', 'Holder')().{method}"
            f".remote({', '.join(map(repr, args))})")


def _holder_boots(server: ServerHandle) -> list[dict[str, Any]]:
    """The Holder class's boots, newest first."""
    stats = json.loads(server.cli("apps", "stats", "test-volumes", "--json").stdout)
    return [boot for boot in stats["boots"] if boot["tag"] == "Holder"]


def _snapshots(server: ServerHandle) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    return [r for r in rows if r["app"] == "test-volumes"]


@pytest.fixture(scope="module", params=["debian_slim", "host"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerHandle]:
    """A criu server with the app deployed: on a root of its own (a user namespace,
    idmapped volumes) and on the host's root."""
    require_criu()
    tmp = tmp_path_factory.mktemp("volumes")
    app = app_with_env(tmp, APP, {"VOLUME_TEST_IMAGE": request.param})
    for handle in module_server("criu"):
        held = tmp / "held.txt"
        held.write_bytes(b"held across the snapshot\n")
        handle.cli("volume", "create", "test-shared")
        handle.cli("volume", "put", "test-shared", str(held), "/held.txt")
        handle.cli("deploy", str(app))
        yield handle


def test_two_containers_share_writes(srv: ServerHandle) -> None:
    writer = _call(srv, f"result = {_fn('write')}.remote('a.txt', 'from the writer')")
    text, reader = _call(srv, f"result = {_fn('read')}.remote('a.txt')")
    assert text == "from the writer"
    assert reader != writer  # two containers, one volume


def test_with_options_mounts_another_volume(srv: ServerHandle) -> None:
    """Modal's 03_scaling_out/multistage_pipeline.py: ``fn.with_options(volumes=...)``."""
    other = "coldsnap.Volume.from_name('test-other', create_if_missing=True)"
    _call(srv, f"result = {_fn('write')}.with_options(volumes={{'/data': {other}}})"
               ".remote('w.txt', 'in the other volume')")
    assert _call(srv, f"result = {_fn('read')}.with_options(volumes={{'/data': {other}}})"
                      ".remote('w.txt')")[0] == "in the other volume"
    assert "w.txt" not in srv.cli("volume", "ls", "test-shared", "/").stdout
    inline = "coldsnap.Secret.from_dict({'K': 'v'})"
    refused = srv.python(f"import coldsnap\n{_fn('read')}.with_options(secrets=[{inline}])",
                         check=False)
    assert "read.with_options(): secrets= takes named secrets here" in refused.stderr


def test_cli_put_get_ls_rm(srv: ServerHandle, tmp_path: Path) -> None:
    local = tmp_path / "notes.txt"
    local.write_text("put by the CLI")
    srv.cli("volume", "put", "test-shared", str(local), "/docs/notes.txt")
    assert _call(srv, f"result = {_fn('read')}.remote('docs/notes.txt')")[0] == "put by the CLI"
    _call(srv, f"result = {_fn('write')}.remote('docs/back.txt', 'from a container')")
    out = tmp_path / "back.txt"
    srv.cli("volume", "get", "test-shared", "/docs/back.txt", str(out))
    assert out.read_text() == "from a container"
    listing = json.loads(srv.cli("volume", "ls", "test-shared", "/docs", "--json").stdout)
    assert sorted(e["path"] for e in listing) == ["/docs/back.txt", "/docs/notes.txt"]
    refused = srv.cli("volume", "rm", "test-shared", "/docs", check=False)
    assert refused.returncode == 1 and "is a directory: pass recursive=True" in refused.stderr
    srv.cli("volume", "rm", "test-shared", "/docs", "-r")
    gone = srv.cli("volume", "get", "test-shared", "/docs/back.txt", "-", check=False)
    assert gone.returncode == 1 and "has no '/docs/back.txt'" in gone.stderr


def test_sdk_methods(srv: ServerHandle, tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "x.bin").write_bytes(b"\x00\x01" * 10)
    code = f"""
vol = coldsnap.Volume.from_name('test-shared')
with vol.batch_upload() as batch:
    batch.put_directory({str(tmp_path / 'tree')!r}, '/tree')
entries = vol.listdir('/tree')
data = b''.join(vol.read_file('/tree/x.bin'))
vol.remove_file('/tree', recursive=True)
result = [[e.path, int(e.type), e.size] for e in entries], data.hex(), len(vol.listdir('/'))
"""
    entries, data, _ = _call(srv, code)
    assert entries == [["tree/x.bin", 1, 20]]
    assert bytes.fromhex(data) == b"\x00\x01" * 10
    assert "held.txt" in _call(srv, f"result = {_fn('listed')}.remote()")
    missing = srv.python("import coldsnap\ncoldsnap.Volume.from_name('absent-v').hydrate()",
                         check=False)
    assert "NotFoundError: no volume named 'absent-v'; create it with `coldsnap volume " \
        "create absent-v`" in missing.stderr, missing.stderr


def test_file_ops_never_follow_a_containers_symlink(srv: ServerHandle, tmp_path: Path
                                                   ) -> None:
    _call(srv, f"result = {_fn('plant_traps')}.remote()")
    for path, why in (("/traps/escape/passwd", "'escape' is not a directory"),
                      ("/traps/hostname", "is a symlink, not a file"),
                      ("/traps/fifo", "is a special file, not a file"),
                      ("/../state.db", "has '..'")):
        refused = srv.cli("volume", "get", "test-shared", path, "-", check=False, timeout=30)
        assert refused.returncode == 1 and why in refused.stderr, (path, refused.stderr)
    local = tmp_path / "x"
    local.write_text("x")
    refused = srv.cli("volume", "put", "test-shared", str(local), "/traps/escape/x",
                      check=False)
    assert refused.returncode == 1 and "is not a directory" in refused.stderr
    assert not Path("/etc/x").exists()
    srv.cli("volume", "rm", "test-shared", "/traps/escape")  # the link, not /etc
    assert Path("/etc/passwd").exists()
    listing = json.loads(srv.cli("volume", "ls", "test-shared", "/traps", "--json").stdout)
    assert {e["path"]: e["type"] for e in listing} == {
        "/traps/fifo": "special file", "/traps/hostname": "symlink"}


def test_ephemeral_volume(srv: ServerHandle) -> None:
    code = """
with coldsnap.Volume.ephemeral() as vol:
    with vol.batch_upload() as batch:
        batch.put_file(__import__('sys').executable, '/python')
    inside = [e.path for e in vol.listdir('/')]
    name = vol.name
result = inside, name
"""
    inside, name = _call(srv, code)
    assert inside == ["python"]
    listing = json.loads(srv.cli("volume", "list", "--json").stdout)
    assert name not in [v["name"] for v in listing]


def test_open_file_survives_the_snapshot(srv: ServerHandle) -> None:
    first, again, mapped = _call(srv, _holder("held_file") + "\nresult = [x.decode() "
                                 "for x in result]")
    assert first == again == mapped == "held across the snapshot\n"
    snapshots = [s for s in _snapshots(srv) if s["tag"] == "Holder"]
    assert len(snapshots) == 1 and snapshots[0]["status"] == "ready", snapshots
    assert _holder_boots(srv)[0]["kind"] in ("restored", "snapshot-created")


def test_volume_changes_keep_the_snapshot(srv: ServerHandle) -> None:
    _call(srv, _holder("read_now", "held.txt"))  # the snapshot exists
    before = {s["key"] for s in _snapshots(srv)}
    _call(srv, f"result = {_fn('write')}.remote('changed.txt', 'new contents')")
    srv.cli("apps", "drain", "test-volumes")  # the next call restores
    assert _call(srv, _holder("read_now", "changed.txt")) == "new contents"
    assert {s["key"] for s in _snapshots(srv)} == before
    assert _holder_boots(srv)[0]["kind"] == "restored", _holder_boots(srv)[0]


def test_data_survives_a_restart(srv: ServerHandle) -> None:
    _call(srv, f"result = {_fn('write')}.remote('kept.txt', 'before the restart')")
    srv.restart()
    assert _call(srv, f"result = {_fn('read')}.remote('kept.txt')")[0] == "before the restart"
    listing = json.loads(srv.cli("volume", "list", "--json").stdout)
    assert "test-shared" in [v["name"] for v in listing]  # (an earlier test made another)


def test_missing_volume_names_the_command(server_factory: type[ServerHandle],
                                          tmp_path: Path) -> None:
    server = server_factory().start()
    app = write_app(tmp_path, "needs_volume", """
        import coldsnap
        app = coldsnap.App("needs-volume")

        @app.function(volumes={"/data": coldsnap.Volume.from_name("absent")})
        def f() -> None:
            pass
    """)
    result = server.cli("deploy", str(app), check=False)
    assert result.returncode == 1
    assert "no volume named 'absent'; create it with `coldsnap volume create absent`" \
        in result.stderr


def test_bad_mount_path_is_refused(tmp_path: Path) -> None:
    import coldsnap
    from coldsnap.wire.errors import InvalidError

    app = coldsnap.App("bad-mount")
    vol = coldsnap.Volume.from_name("v")
    with pytest.raises(InvalidError, match="'/proc' is a system directory"):
        app.function(volumes={"/proc": vol})
    with pytest.raises(InvalidError, match="must be an absolute path"):
        app.function(volumes={"data": vol})
    with pytest.raises(InvalidError, match="not a coldsnap.Volume"):
        app.function(volumes={"/data": "v"})


def test_a_held_file_that_changed_size_makes_a_new_snapshot(srv: ServerHandle) -> None:
    """CRIU restores a file held open across the snapshot only at its size then: once it
    changed size, that boot goes without the snapshot (saying why) and the next one
    makes a new snapshot, which reads the file as it is now."""
    _call(srv, _holder("read_now", "held.txt"))  # the snapshot exists
    grown = "held across the snapshot\nand grown since\n"
    _call(srv, f"result = {_fn('write')}.remote('held.txt', {grown!r})")
    srv.cli("apps", "drain", "test-volumes")
    first, again, _ = _call(srv, _holder("held_file") + "\nresult = [x.decode() "
                            "for x in result]")
    assert first == again == grown  # enter(snap=True) ran again: a boot without it
    why = "holds /data/held.txt open, a file on a volume that changed size"
    assert why in srv.cli("logs", "test-volumes").stdout
    srv.cli("apps", "drain", "test-volumes")
    _call(srv, _holder("read_now", "held.txt"))
    assert _holder_boots(srv)[0]["kind"] == "snapshot-created"
    srv.cli("apps", "drain", "test-volumes")
    first, again, mapped = _call(srv, _holder("held_file") + "\nresult = [x.decode() "
                                 "for x in result]")
    assert first == again == mapped == grown
    assert _holder_boots(srv)[0]["kind"] == "restored"


def test_the_none_engine_says_volumes_need_criu(server_factory: type[ServerHandle]) -> None:
    server = server_factory("none").start()
    server.cli("deploy", str(APP))
    failed = server.python(f"import coldsnap\n{_fn('read')}.remote('x')", check=False)
    assert failed.returncode == 1
    assert "volumes (/data) need containers with mount namespaces: run the server with " \
        "the criu engine" in failed.stderr, failed.stderr


def test_a_killed_servers_volume_views_are_cleared(server_factory: type[ServerHandle],
                                                   tmp_path: Path) -> None:
    """A restore in a user namespace binds an idmapped view of each volume from
    /run/coldsnap-volume-views; the next start of a killed server unmounts them."""
    from coldsnap.engine.sandbox import volume_views_of

    require_criu()
    server = server_factory("criu").start()
    held = tmp_path / "held.txt"
    held.write_text("held\n")
    server.cli("volume", "create", "test-shared")
    server.cli("volume", "put", "test-shared", str(held), "/held.txt")
    server.cli("deploy", str(APP))  # debian_slim: a user namespace
    assert _call(server, _holder("read_now", "held.txt")) == "held\n"
    views = volume_views_of(server.settings.run_path)
    mounted = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if str(views) in line]
    assert mounted, "the restored container's volume view"
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.start()
    assert str(views) not in Path("/proc/self/mountinfo").read_text()
    assert not views.exists()
    assert _call(server, _holder("read_now", "held.txt")) == "held\n"
    server.stop()
    assert not views.exists()  # a clean stop leaves nothing there either
