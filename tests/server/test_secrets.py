"""Secrets through the whole platform: env variables in plain and restored containers,
the current value after a change (same snapshot), and never a value in logs, stats,
snapshot metadata, deploy output or the stored description."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import APPS, REPO, ServerHandle
from tests.end_to_end import module_server, require_criu, write_app

APP = APPS / "secret_user.py"
FIRST, SECOND = "tok-first-91c2", "tok-second-5d0a"
INLINE = "inline-value-7f3e"
GONE = "gone-value-3b1f"  # a key the secret loses after the snapshot
NAMES = ["TOKEN", "INLINE_KEY", "SKIPPED", "GONE"]


def _env(server: ServerHandle, snapshotted: bool) -> dict[str, Any]:
    target = ("coldsnap.Cls.from_name('test-secrets', 'Snap')().env" if snapshotted
              else "coldsnap.Function.from_name('test-secrets', 'env')")
    out = server.python(f"import json, coldsnap\nprint(json.dumps({target}.remote({NAMES!r})))")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _snap_boots(server: ServerHandle) -> list[dict[str, Any]]:
    stats = json.loads(server.cli("apps", "stats", "test-secrets", "--json").stdout)
    return [boot for boot in stats["boots"] if boot["tag"] == "Snap"]


def _keys(server: ServerHandle) -> set[str]:
    rows = json.loads(server.cli("snapshots", "ls", "--json").stdout)
    return {row["key"] for row in rows if row["app"] == "test-secrets"}


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    require_criu()
    for handle in module_server("criu"):
        handle.cli("secret", "create", "test-token", f"TOKEN={FIRST}", f"GONE={GONE}")
        handle.deploy_output = handle.cli("deploy", str(APP), "--json").stdout  # type: ignore[attr-defined]
        yield handle


def test_plain_container_sees_secrets(srv: ServerHandle) -> None:
    assert _env(srv, snapshotted=False) == {"TOKEN": FIRST, "INLINE_KEY": INLINE,
                                            "SKIPPED": None, "GONE": GONE}


def test_restored_container_sees_the_current_value(srv: ServerHandle) -> None:
    assert _env(srv, snapshotted=True)["TOKEN"] == FIRST  # makes the snapshot
    keys = _keys(srv)
    assert len(keys) == 1
    srv.cli("secret", "create", "test-token", f"TOKEN={SECOND}", "--force")
    srv.cli("apps", "drain", "test-secrets")
    assert _env(srv, snapshotted=True) == {"TOKEN": SECOND, "INLINE_KEY": INLINE,
                                           "SKIPPED": None, "GONE": None}
    assert _snap_boots(srv)[0]["kind"] == "restored"
    assert _keys(srv) == keys  # the same snapshot: a value is no part of the key
    redeploy = json.loads(srv.cli("deploy", str(APP), "--json").stdout)
    assert redeploy["changed"] is False  # nor of the version


def test_values_never_shown(srv: ServerHandle) -> None:
    _env(srv, snapshotted=True)
    shown = {
        "logs": srv.cli("logs", "test-secrets").stdout,
        "stats": srv.cli("apps", "stats", "test-secrets", "--json").stdout,
        "apps": srv.cli("apps", "ls", "--json").stdout,
        "secret ls": srv.cli("secret", "ls", "--json").stdout,
        "deploy": srv.deploy_output,  # type: ignore[attr-defined]
        "server log": srv.log(),
    }
    for key in _keys(srv):
        shown[f"inspect {key}"] = srv.cli("snapshots", "inspect", key, "--json").stdout
    store = srv.state_dir / "snapshots"
    for meta in store.rglob("*.json"):
        shown[str(meta)] = meta.read_text()
    with sqlite3.connect(srv.state_dir / "state.db") as db:
        shown["stored descriptions"] = "\n".join(
            row[0] for row in db.execute("SELECT description FROM versions"))
    for value in (FIRST, SECOND, INLINE, GONE):
        leaks = [where for where, text in shown.items() if value in text]
        assert not leaks, f"{value} shown in {leaks}"
    assert "TOKEN" in shown["secret ls"]  # the keys are listed, not the values
    table = srv.cli("deploy", str(APP)).stdout
    assert "secrets test-token, inline-0" in table and INLINE not in table


def test_stored_private(srv: ServerHandle) -> None:
    secrets = srv.state_dir / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    files = [secrets / "test-token.json", secrets / ".inline" / "test-secrets.json"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert json.loads(files[1].read_text()) == {"inline-0": {"INLINE_KEY": INLINE}}


def test_missing_secret_names_the_command(server_factory: type[ServerHandle],
                                          tmp_path: Path) -> None:
    server = server_factory().start()
    app = write_app(tmp_path, "needs_secret", """
        import coldsnap
        app = coldsnap.App("needs-secret")

        @app.function(secrets=[coldsnap.Secret.from_name("absent")])
        def f() -> None:
            pass
    """)
    result = server.cli("deploy", str(app), check=False)
    assert result.returncode == 1
    assert "no secret named 'absent'; create it with `coldsnap secret create absent " \
        "KEY=VALUE ...`" in result.stderr
    bad = server.cli("secret", "create", "s", "NOEQUALS", check=False)
    assert bad.returncode == 1 and "'NOEQUALS' is not KEY=VALUE" in bad.stderr
    server.cli("secret", "create", "s", "A=1")
    again = server.cli("secret", "create", "s", "A=2", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    server.cli("secret", "rm", "s")
    assert "no secrets" in server.cli("secret", "ls").stdout


def test_from_dotenv(tmp_path: Path) -> None:
    import coldsnap

    (tmp_path / ".env").write_text("# comment\nexport A=1\nB='two words'  # note\n")
    (tmp_path / "sub").mkdir()
    secret = coldsnap.Secret.from_dotenv(tmp_path / "sub")
    assert secret.values() == {"A": "1", "B": "two words"}
    assert "two words" not in repr(secret)


def test_the_guestbook_example(server_factory: type[ServerHandle]) -> None:
    """examples/guestbook.py as the README walks through it: a volume and a secret."""
    require_criu()
    server = server_factory("criu").start()
    example = str(REPO / "examples" / "guestbook.py")
    server.cli("secret", "create", "guestbook-key", "SIGNING_KEY=first")
    first = server.cli("run", example, "--name", "Ada")
    assert "Ada" in first.stdout and first.stdout.count(" ok") == 1, first.stdout
    server.cli("secret", "create", "guestbook-key", "SIGNING_KEY=second", "--force")
    second = server.cli("run", example, "--name", "Bob")
    assert "signed with another key" in second.stdout  # Ada's entry, the old key
    assert "restored from memory snapshot" in second.stderr  # the same snapshot
    stored = server.cli("volume", "get", "guestbook", "/entries.jsonl", "-").stdout
    assert [json.loads(line)["name"] for line in stored.splitlines()] == ["Ada", "Bob"]


def test_a_secret_deleted_after_the_deploy_fails_the_boot(
        server_factory: type[ServerHandle], tmp_path: Path) -> None:
    server = server_factory().start()
    app = write_app(tmp_path, "gone_secret", """
        import coldsnap
        app = coldsnap.App("gone-secret")

        @app.function(secrets=[coldsnap.Secret.from_name("short-lived")])
        def f() -> None:
            pass
    """)
    server.cli("secret", "create", "short-lived", "K=v")
    server.cli("deploy", str(app))
    server.cli("secret", "rm", "short-lived")
    failed = server.python("import coldsnap\ncoldsnap.Function.from_name('gone-secret', 'f')"
                           ".remote()", check=False)
    assert failed.returncode == 1
    assert "no secret named 'short-lived'; create it with `coldsnap secret create " \
        "short-lived KEY=VALUE ...`" in failed.stderr, failed.stderr


@pytest.mark.parametrize("base", ["from_host", "debian_slim"])
def test_image_steps_get_secrets_and_volumes(server_factory: type[ServerHandle],
                                             tmp_path: Path, base: str) -> None:
    """Image.run_commands/run_function(secrets=, volumes=): the build container has the
    values and the volume; a changed value rebuilds nothing."""
    require_criu()
    server = server_factory("criu").start()
    server.cli("secret", "create", "build-token", "BUILD_TOKEN=tok-build-1")
    app = write_app(tmp_path, "built_with_objects", """
        import os
        import coldsnap

        token = coldsnap.Secret.from_name("build-token")
        cache = coldsnap.Volume.from_name("build-cache", create_if_missing=True)

        def fill_cache() -> None:
            with open("/cache/from-build.txt", "w") as handle:
                handle.write("written at build time with " + os.environ["BUILD_TOKEN"])

        image = (coldsnap.Image.BASE()
                 .run_commands("test -n \\"$BUILD_TOKEN\\" && echo seen > /token-seen",
                               secrets=[token])
                 .run_function(fill_cache, secrets=[token], volumes={"/cache": cache}))
        app = coldsnap.App("built-with-objects", image=image)

        @app.function(volumes={"/cache": cache})
        def read() -> list[str]:
            return [open("/token-seen").read().strip(), open("/cache/from-build.txt").read(),
                    os.environ.get("BUILD_TOKEN", "unset")]
    """.replace("BASE", base))
    deployed = server.cli("deploy", str(app))
    assert "tok-build-1" not in deployed.stdout + deployed.stderr
    call = "import coldsnap\nprint(coldsnap.Function.from_name('built-with-objects', " \
        "'read').remote())"
    assert server.python(call).stdout.strip() == str(
        ["seen", "written at build time with tok-build-1", "unset"])
    server.cli("secret", "create", "build-token", "BUILD_TOKEN=tok-build-2", "--force")
    again = json.loads(server.cli("deploy", str(app), "--json").stdout)
    assert again["changed"] is False  # the step's hash has the name, not the value
    assert "tok-build-1" not in (server.state_dir / "state.db").read_bytes().decode(
        errors="replace")


def test_image_steps_refuse_inline_secrets() -> None:
    import coldsnap
    from coldsnap.wire.errors import InvalidError

    with pytest.raises(InvalidError, match="takes named secrets only"):
        coldsnap.Image.debian_slim().run_commands(
            "true", secrets=[coldsnap.Secret.from_dict({"A": "b"})])
