"""nsinit's outer process (user namespaces) exits as the container's root did."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# The outer nsinit's part, on a plain child: it waits for it and passes its end on.
PARENT = """
import os, signal, sys
from coldsnap.engine.nsinit import wait_and_exit
pid = os.fork()
if pid == 0:
    number = int(sys.argv[1])
    if number == 0:
        os._exit(7)
    if number != signal.SIGKILL:  # a runner started with nohup ignores SIGHUP: not here
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(0)
wait_and_exit(pid)
"""


@pytest.mark.parametrize("number", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_a_child_killed_by_a_signal_kills_nsinit_by_the_same(number: int) -> None:
    done = subprocess.run([sys.executable, "-c", PARENT, str(int(number))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -number, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_childs_exit_code_is_nsinits() -> None:
    done = subprocess.run([sys.executable, "-c", PARENT, "0"],  # the child exits 7
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (7, "")
