"""Every rule of coldsnap's seccomp filter (coldsnap/engine/seccomp.py) holds inside
fresh and restored containers; the same probe on the host, unfiltered, gets through."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest

from coldsnap.engine import seccomp
from tests.apps.isolation_probe import SYSCALL_PROBE
from tests.conftest import ServerHandle
from tests.isolation.conftest import KINDS, call_probe

REFUSED = {name: errno.errorcode[code] for name, code in seccomp.DENIED.items()}
REFUSED.update({f"{name}(NEWUSER)": "EPERM" for name in seccomp.NO_NEW_USERNS})
STILL_ALLOWED = {"unshare(FILES)": "allowed", "thread": "ran", "subprocess": 0}


def test_the_probe_covers_every_rule_of_the_filter() -> None:
    probed = set(json.loads(_host_probe()))
    assert set(REFUSED) <= probed, set(REFUSED) - probed


@pytest.mark.parametrize("kind", KINDS)
def test_every_rule_refuses_its_syscall_in_a_container(
    probe_server: ServerHandle, kind: str
) -> None:
    answer = call_probe(probe_server, kind, "syscalls")
    assert answer["seccomp"] == "2", answer  # a filter, coldsnap's (restores keep it)
    assert answer["results"] == {**REFUSED, **STILL_ALLOWED}, answer["stderr"]


def test_the_host_unfiltered_gets_other_answers() -> None:
    host = json.loads(_host_probe())
    for name, refused in REFUSED.items():
        assert host[name] != refused, (name, host[name])
    assert {k: host[k] for k in STILL_ALLOWED} == STILL_ALLOWED


def _host_probe() -> str:
    done = subprocess.run([sys.executable, "-c", SYSCALL_PROBE], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout
