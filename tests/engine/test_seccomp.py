"""The containers' seccomp filter, installed in a subprocess that then probes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coldsnap.engine import seccomp

PROBE = r"""
import ctypes, errno, json, os, subprocess, sys, threading
from coldsnap.engine.nsinit import install_seccomp

install_seccomp(bytes.fromhex(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)

def errno_of(nr, *args):
    ctypes.set_errno(0)
    result = libc.syscall(nr, *args)
    return 0 if result >= 0 else errno.errorcode[ctypes.get_errno()]

CLONE_NEWUSER, CLONE_FILES = 0x10000000, 0x400
results = {
    "unshare(NEWUSER)": errno_of(272, CLONE_NEWUSER),
    "unshare(FILES)": errno_of(272, CLONE_FILES),
    "keyctl": errno_of(250, 0, 0, 0, 0, 0),
    "bpf": errno_of(321, 0, 0, 0),
    "userfaultfd": errno_of(323, 0),
    "io_uring_setup": errno_of(425, 1, 0),
    "clone3": errno_of(435, 0, 0),
}
box = []
thread = threading.Thread(target=lambda: box.append("thread ran"))
thread.start(); thread.join()
results["thread"] = box[0]
results["subprocess"] = subprocess.run(["true"]).returncode
print(json.dumps(results))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="installing a filter without no_new_privs needs root")
def test_the_filter_refuses_what_containers_have_no_use_for() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, seccomp.program().hex()],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "unshare(NEWUSER)": "EPERM",
        "unshare(FILES)": 0,  # other flags still work
        "keyctl": "EPERM",
        "bpf": "EPERM",
        "userfaultfd": "EPERM",
        "io_uring_setup": "ENOSYS",
        "clone3": "ENOSYS",  # glibc falls back to clone, whose flags the filter reads
        "thread": "thread ran",
        "subprocess": 0,
    }


def test_the_program_is_whole_instructions_within_the_kernel_limit() -> None:
    program = seccomp.program()
    assert len(program) % 8 == 0
    assert 0 < len(program) // 8 <= 4096  # BPF_MAXINSNS
