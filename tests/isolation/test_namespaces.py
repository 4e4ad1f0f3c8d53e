"""IPC, UTS and cgroup namespaces of their own, and a tiny init as pid 1: user code
that kills itself takes its container down, and the caller hears of it."""

from __future__ import annotations

import ctypes
import os
import random
import socket
from collections.abc import Iterator

import pytest

from coldsnap.engine.sandbox import CONTAINER_INIT
from tests.conftest import ServerHandle
from tests.isolation.conftest import APP, KINDS, call_probe

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
IPC_CREAT, IPC_RMID = 0o1000, 0


def _host_shm_keys() -> list[int]:
    with open("/proc/sysvipc/shm") as f:
        return [int(line.split()[0]) for line in f.read().splitlines()[1:]]


@pytest.fixture
def host_segment() -> Iterator[int]:
    """A root-only SysV shared memory segment of the host, holding a secret."""
    key = random.randrange(1 << 20, 1 << 30)
    shmid = _libc.shmget(key, 4096, IPC_CREAT | 0o600)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    address = _libc.shmat(shmid, None, 0)
    ctypes.memmove(address, b"host secret", 11)
    _libc.shmdt(ctypes.c_void_p(address))
    yield key
    _libc.shmctl(shmid, IPC_RMID, None)


@pytest.mark.parametrize("kind", KINDS)
def test_the_hosts_shared_memory_is_out_of_reach(
    probe_server: ServerHandle, host_segment: int, kind: str
) -> None:
    own_key = host_segment + 1
    answer = call_probe(probe_server, kind, "shm", host_segment, own_key)
    assert _libc.shmget(host_segment, 0, 0) >= 0  # the host finds it
    assert answer["host_segment"] == "ENOENT"
    assert host_segment not in answer["keys_listed"]
    assert answer["own_segment_made"] and own_key in answer["keys_listed"]  # IPC works inside
    assert own_key not in _host_shm_keys()  # and stays inside


@pytest.mark.parametrize("kind", KINDS)
def test_containers_have_namespaces_of_their_own(probe_server: ServerHandle, kind: str) -> None:
    answer = call_probe(probe_server, kind, "namespaces")
    for name, container_ns in answer["ids"].items():
        assert container_ns != os.readlink(f"/proc/self/ns/{name}"), name
    assert answer["sethostname"] == "EPERM"  # no CAP_SYS_ADMIN; its own UTS namespace anyway
    assert answer["hostname"] == socket.gethostname() != "renamed-by-a-container"


def test_fresh_and_restored_containers_do_not_share_ipc(probe_server: ServerHandle) -> None:
    ids = [call_probe(probe_server, kind, "namespaces")["ids"] for kind in KINDS]
    assert ids[0]["ipc"] != ids[1]["ipc"] and ids[0]["uts"] != ids[1]["uts"]


@pytest.mark.parametrize("kind", KINDS)
def test_pid_1_is_an_init_that_reaps_orphans(probe_server: ServerHandle, kind: str) -> None:
    answer = call_probe(probe_server, kind, "processes")
    assert answer["pid"] != 1
    assert answer["init"] == CONTAINER_INIT
    assert answer["zombies"] == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_function_that_kills_itself_kills_its_container(
    probe_server: ServerHandle, kind: str
) -> None:
    answer = call_probe(probe_server, kind, "kill_self")
    assert answer["error_kind"] == "container_died", answer
    # tini: 128 + SIGKILL
    assert "exited (exit status 137, killed by signal 9 (SIGKILL))" in answer["message"]
    assert call_probe(probe_server, kind, "read", "/etc/os-release")["data"]  # a new one serves


def test_sigterm_to_pid_1_reaches_the_runtime(probe_server: ServerHandle) -> None:
    answer = call_probe(probe_server, "fresh", "terminate_init")
    assert answer["error_kind"] == "container_died", answer
    logs = probe_server.cli("logs", APP).stdout
    assert "probe exit hook ran" in logs, logs
