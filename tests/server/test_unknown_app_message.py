"""What a server says about an app it does not know: the apps it lists as deployed are
the running ones; a stopped app is named as stopped."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import write_app

APP = """
import coldsnap

app = coldsnap.App("{name}")


@app.function()
def hello() -> str:
    return "hi"
"""
EXPECTED = ("no app named 'never-deployed' is deployed (deployed apps: test-running; "
            "stopped: test-stopped); deploy it with `coldsnap deploy FILE`")


def test_a_stopped_app_is_not_listed_as_deployed(server: ServerHandle, tmp_path: Path) -> None:
    for name in ("test-running", "test-stopped"):
        server.cli("deploy", str(write_app(tmp_path, name.replace("-", "_"),
                                           APP.format(name=name))))
    server.cli("app", "stop", "test-stopped")
    logs = server.cli("logs", "never-deployed", check=False)
    assert logs.returncode == 1
    assert logs.stderr.strip() == f"error: {EXPECTED}"
    called = server.python("import coldsnap\n"
                           "coldsnap.Function.from_name('never-deployed', 'hello').remote()\n",
                           check=False)
    assert called.returncode != 0
    assert EXPECTED in called.stderr
