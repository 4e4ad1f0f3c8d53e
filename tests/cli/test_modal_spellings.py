"""Modal's CLI spellings on a real server: `app list` prints what `apps ls` prints (and
`list` for the other `ls` commands), `app logs APP` what `logs APP` prints."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import APPS, ServerHandle
from tests.end_to_end import wait_for

CALL = "import coldsnap\nprint(coldsnap.Function.from_name('test-square', 'square').remote(4))"
AGO = re.compile(r"\d+[smhd] ago")  # `apps ls`'s UPDATED column moves on between two runs


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerHandle]:
    handle = ServerHandle("none").start()
    try:
        handle.cli("deploy", str(APPS / "square.py"))
        assert handle.python(CALL).stdout.strip() == "16"
        yield handle
    finally:
        handle.cleanup()


def _out(server: ServerHandle, *args: str) -> str:
    return AGO.sub("ago", server.cli(*args).stdout)


def test_app_list_prints_what_apps_ls_prints(srv: ServerHandle) -> None:
    listed = _out(srv, "app", "list")
    assert "test-square" in listed and listed.startswith("APP")
    assert listed == _out(srv, "apps", "ls")
    assert _out(srv, "app", "list", "--json") == _out(srv, "apps", "ls", "--json")


@pytest.mark.parametrize("group", ["snapshots", "dict", "queue", "token"])
def test_list_is_ls_in_every_group_that_has_ls(srv: ServerHandle, group: str) -> None:
    # With engine none `snapshots ls` is an error: `list` must be the same error.
    listed, ls = (srv.cli(group, verb, "--json", check=False) for verb in ("list", "ls"))
    assert "invalid choice" not in listed.stderr
    assert (listed.returncode, listed.stdout, listed.stderr) == (
        ls.returncode, ls.stdout, ls.stderr)


def test_app_logs_prints_what_logs_prints(srv: ServerHandle) -> None:
    def same() -> bool:  # a container's own note may land between the two runs
        by_app = srv.cli("app", "logs", "test-square", "-n", "5", "--timestamps").stdout
        return "square(4)" in by_app and by_app == srv.cli(
            "logs", "test-square", "-n", "5", "--timestamps").stdout
    wait_for(same, 30, "`app logs` and `logs` to print the same lines")


def test_help_shows_the_modal_spellings(srv: ServerHandle) -> None:
    usage = srv.cli("app", "--help").stdout
    assert "ls|list|stop|stats|drain|logs" in usage
    assert re.search(r"ls \(list\)\s+list apps", usage), usage
    assert "an app's log lines (as `coldsnap logs`)" in usage
