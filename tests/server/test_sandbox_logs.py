"""`coldsnap logs APP` for an app only looked up for its sandboxes (never deployed): the
server writes the sandboxes' own lines to that app's log, so the command reads it."""

from __future__ import annotations

import time

from tests.conftest import ServerHandle
from tests.end_to_end import require_criu

SCRIPT = """
import coldsnap
app = coldsnap.App.lookup("sandbox-logs", create_if_missing=True)
sb = coldsnap.Sandbox.create(app=app, image=coldsnap.Image.from_host())
print(sb.exec("echo", "hi").stdout.read().strip())
sb.terminate()
"""


def test_logs_of_an_app_that_only_made_sandboxes(server_factory: type[ServerHandle]) -> None:
    require_criu()
    srv = server_factory("criu").start()
    assert srv.python(SCRIPT, timeout=300).stdout.strip() == "hi"
    shown = srv.cli("logs", "sandbox-logs", check=False)
    assert shown.returncode == 0, shown.stderr
    missing = srv.cli("logs", "never-seen-app", check=False)
    assert missing.returncode == 1 and "no app named 'never-seen-app'" in missing.stderr


TERMINATED = """
import coldsnap
app = coldsnap.App.lookup("sandbox-terminated", create_if_missing=True)
sb = coldsnap.Sandbox.create(app=app, timeout=60)  # the default image: a user namespace
print(sb.exec("echo", "hi").stdout.read().strip())
sb.terminate()
"""


def test_a_terminated_sandbox_leaves_no_traceback_in_its_apps_log(
        server_factory: type[ServerHandle]) -> None:
    """Its init (engine/nsinit.py) passes the kill on as it came: it tried to reset
    SIGKILL's handler, which Linux refuses, and printed a traceback."""
    require_criu()
    srv = server_factory("criu").start()
    assert srv.python(TERMINATED, timeout=600).stdout.strip() == "hi"
    time.sleep(2)  # the container's last lines reach the log as it ends
    logs = srv.cli("logs", "sandbox-terminated").stdout
    assert "Traceback" not in logs and "nsinit.py" not in logs, logs
