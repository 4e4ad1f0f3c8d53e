"""Small helpers for the end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import ServerHandle


def write_app(directory: Path, name: str, source: str) -> Path:
    """A throwaway app file for cases tests/apps does not cover."""
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def app_with_env(directory: Path, app_file: Path, env: dict[str, str]) -> Path:
    """A copy of ``app_file`` (same name) that sets ``env`` when imported: a server passes
    only an allow-list of its own environment to deploys and containers."""
    path = directory / app_file.name
    path.write_text(f"import os as _os\n_os.environ.update({env!r})\n" + app_file.read_text())
    return path


def stats(server: ServerHandle, app: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(server.cli("apps", "stats", app, "--json").stdout)
    return result


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def module_server(engine: str = "none", env: dict[str, str] | None = None
                  ) -> Iterator[ServerHandle]:
    handle = ServerHandle(engine, env).start()
    try:
        yield handle
    finally:
        handle.cleanup()


def settings_error_env() -> list[tuple[str, str, str]]:
    """(variable, bad value, the error it gets) for settings checks."""
    return [
        ("COLDSNAP_MAX_CONNECTIONS", "abc",
         "COLDSNAP_MAX_CONNECTIONS='abc' is not a valid int"),
        ("COLDSNAP_MAX_PAYLOAD_BYTES", "nan",
         "COLDSNAP_MAX_PAYLOAD_BYTES='nan' is not a valid int"),
        ("COLDSNAP_CLIENT_TIMEOUT_S", "nan",
         "COLDSNAP_CLIENT_TIMEOUT_S='nan' must be a finite number above 0"),
        ("COLDSNAP_CLIENT_TIMEOUT_S", "0",
         "COLDSNAP_CLIENT_TIMEOUT_S='0' must be a finite number above 0"),
        ("COLDSNAP_IDLE_TIMEOUT_S", "-1",
         "COLDSNAP_IDLE_TIMEOUT_S='-1' must be a finite number 0 or more"),
    ]


def criu_missing(reason: str) -> NoReturn:
    """Skip a test that needs CRIU, or fail it under COLDSNAP_REQUIRE_CRIU=1: the test
    command sets that where `coldsnap doctor` passes, so a CRIU test can't go quietly
    green by skipping."""
    if os.environ.get("COLDSNAP_REQUIRE_CRIU") == "1":
        pytest.fail(f"{reason} (COLDSNAP_REQUIRE_CRIU=1: `coldsnap doctor` passed when the "
                    "test command started, so this must run)")
    pytest.skip(reason)


def require_criu() -> None:
    from coldsnap.engine.doctor import criu_usable
    from coldsnap.settings import Settings

    settings = Settings.from_env()
    if not criu_usable(settings):
        criu_missing(f"the criu engine needs root and a working CRIU at {settings.criu_path} "
                     "(`coldsnap doctor` says what is missing)")


def interruptible() -> None:
    """``preexec_fn`` for a CLI child a test will Ctrl-C: SIGINT back to its default, so
    that Python installs its KeyboardInterrupt handler even when the test runner was
    started with SIGINT ignored (a background job of a shell without job control)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
