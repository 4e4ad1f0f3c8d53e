"""`coldsnap logs --timestamps` (also with -f) on a real server: each line as it reads
without the flag, container-id prefix intact, after its UTC arrival time."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys

from tests.conftest import APPS, ServerHandle

STAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)")
CALL = "import coldsnap\nprint(coldsnap.Function.from_name('test-square', 'square').remote({}))"


def _stamped(line: str) -> tuple[datetime.datetime, str]:
    match = STAMPED.fullmatch(line)
    assert match, f"not a timestamped line: {line!r}"
    when = datetime.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    return when, match.group(2)


def test_logs_timestamps_keep_each_lines_container_prefix(server: ServerHandle) -> None:
    started = datetime.datetime.now(datetime.UTC)
    server.cli("deploy", str(APPS / "square.py"))
    assert server.python(CALL.format(5)).stdout.strip() == "25"
    plain = server.cli("logs", "test-square").stdout.splitlines()
    stamped = server.cli("logs", "test-square", "--timestamps").stdout.splitlines()
    entries = [_stamped(line) for line in stamped]
    texts = [text for _, text in entries]
    assert texts[:len(plain)] == plain  # the same lines, as they read without the flag
    assert any(re.fullmatch(r"\[cs-[0-9a-f]+\] square\(5\)", text) for text in texts), texts
    times = [when for when, _ in entries]
    assert times == sorted(times)
    slack = datetime.timedelta(seconds=5)
    assert started - slack <= times[0] and times[-1] <= datetime.datetime.now(datetime.UTC)


def test_logs_follow_with_timestamps(server: ServerHandle) -> None:
    server.cli("deploy", str(APPS / "square.py"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "coldsnap.cli.main", "logs", "test-square", "-f", "-t"],
        env=server.env, stdout=subprocess.PIPE, text=True,
    )
    try:
        server.python(CALL.format(11))
        assert follower.stdout is not None
        for line in follower.stdout:
            _, text = _stamped(line.rstrip("\n"))
            if text.endswith("square(11)"):
                assert re.fullmatch(r"\[cs-[0-9a-f]+\] square\(11\)", text)
                break
    finally:
        follower.terminate()
        follower.wait(10)
        if follower.stdout is not None:
            follower.stdout.close()
